#include "dirtylog/kvm/vcpu_state.h"

#include <cstring>
#include <map>
#include <optional>
#include <string>

namespace xm::kvm {
namespace {

constexpr uint32_t kVmWide = 0xffffffffu;
constexpr uint32_t kFlagSregs2 = 1u << 0;
constexpr uint32_t kFlagIrqchip = 1u << 1;

enum Tag : uint32_t {
  kRegs = 1,
  kSregs = 2,
  kSregs2 = 3,
  kFpu = 4,
  kXsave = 5,
  kXcrs = 6,
  kMsrs = 7,
  kLapic = 8,
  kEvents = 9,
  kDebugregs = 10,
  kMpState = 11,
  kTscKhz = 12,
  kCpuid = 13,
  kClock = 20,
  kIrqchip = 21,
};

const char* TagName(uint32_t tag) {
  switch (tag) {
    case kRegs: return "regs";
    case kSregs: return "sregs";
    case kSregs2: return "sregs2";
    case kFpu: return "fpu";
    case kXsave: return "xsave";
    case kXcrs: return "xcrs";
    case kMsrs: return "msrs";
    case kLapic: return "lapic";
    case kEvents: return "vcpu_events";
    case kDebugregs: return "debugregs";
    case kMpState: return "mp_state";
    case kTscKhz: return "tsc_khz";
    case kCpuid: return "cpuid";
    case kClock: return "clock";
    case kIrqchip: return "irqchip";
    default: return nullptr;
  }
}

class Writer {
 public:
  void U32(uint32_t v) { Raw(&v, sizeof v); }
  void Section(uint32_t tag, uint32_t vcpu, const void* p, size_t n) {
    U32(tag);
    U32(vcpu);
    U32(static_cast<uint32_t>(n));
    Raw(p, n);
  }
  template <typename T>
  void Struct(uint32_t tag, uint32_t vcpu, const T& v) {
    Section(tag, vcpu, &v, sizeof v);
  }
  std::vector<uint8_t> Take() { return std::move(out_); }

 private:
  void Raw(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out_.insert(out_.end(), b, b + n);
  }
  std::vector<uint8_t> out_;
};

struct Section {
  uint32_t tag;
  uint32_t vcpu;
  std::span<const uint8_t> bytes;
};

struct Parsed {
  uint32_t version = 0;
  uint32_t vcpus = 0;
  uint32_t flags = 0;
  std::vector<Section> sections;
};

Result<Parsed> Parse(std::span<const uint8_t> blob) {
  auto u32 = [&](uint32_t& v) {
    if (blob.size() < 4) return false;
    std::memcpy(&v, blob.data(), 4);
    blob = blob.subspan(4);
    return true;
  };
  Parsed p;
  uint32_t magic = 0;
  if (!u32(magic) || magic != kStateMagic) return Error(Code::kIncompatible, "kvm: vCPU state is not from a KVM guest");
  if (!u32(p.version) || p.version != kStateVersion)
    return Error(Code::kVersion, "kvm: vCPU state version " + std::to_string(p.version) + " not supported (this is " +
                                     std::to_string(kStateVersion) + ")");
  if (!u32(p.vcpus) || !u32(p.flags)) return Error(Code::kProtocol, "kvm: vCPU state header truncated");
  while (!blob.empty()) {
    Section s{};
    uint32_t len = 0;
    if (!u32(s.tag) || !u32(s.vcpu) || !u32(len) || blob.size() < len)
      return Error(Code::kProtocol, "kvm: vCPU state section " + std::to_string(p.sections.size()) + " truncated");
    if (!TagName(s.tag)) return Error(Code::kProtocol, "kvm: vCPU state has unknown section " + std::to_string(s.tag));
    if (s.vcpu != kVmWide && s.vcpu >= p.vcpus)
      return Error(Code::kProtocol, "kvm: vCPU state section for vCPU " + std::to_string(s.vcpu) + " of " +
                                        std::to_string(p.vcpus));
    s.bytes = blob.subspan(0, len);
    blob = blob.subspan(len);
    p.sections.push_back(s);
  }
  return p;
}

// The sections of one vCPU (or the VM), by tag; a repeated tag is an error
// except for irqchip (one per chip).
class SectionSet {
 public:
  Status Add(const Section& s) {
    if (s.tag != kIrqchip && by_tag_.count(s.tag))
      return Error(Code::kProtocol, std::string("kvm: vCPU state repeats section ") + TagName(s.tag));
    by_tag_.emplace(s.tag, s.bytes);
    return {};
  }
  bool Has(uint32_t tag) const { return by_tag_.count(tag) != 0; }
  Result<std::span<const uint8_t>> Bytes(uint32_t tag, const std::string& who) const {
    auto it = by_tag_.find(tag);
    if (it == by_tag_.end()) return Error(Code::kProtocol, "kvm: vCPU state lacks " + std::string(TagName(tag)) + who);
    return it->second;
  }
  template <typename T>
  Result<T> Struct(uint32_t tag, const std::string& who) const {
    XM_ASSIGN_OR_RETURN(auto b, Bytes(tag, who));
    if (b.size() != sizeof(T))
      return Error(Code::kProtocol, "kvm: vCPU state section " + std::string(TagName(tag)) + who + " is " +
                                        std::to_string(b.size()) + " bytes, expected " + std::to_string(sizeof(T)));
    T v;
    std::memcpy(&v, b.data(), sizeof v);
    return v;
  }
  template <typename T>
  Result<std::vector<T>> Array(uint32_t tag, const std::string& who) const {
    XM_ASSIGN_OR_RETURN(auto b, Bytes(tag, who));
    if (b.size() % sizeof(T) != 0)
      return Error(Code::kProtocol, "kvm: vCPU state section " + std::string(TagName(tag)) + who + " has a partial entry");
    std::vector<T> v(b.size() / sizeof(T));
    if (!v.empty()) std::memcpy(v.data(), b.data(), b.size());
    return v;
  }
  auto Range(uint32_t tag) const { return by_tag_.equal_range(tag); }

 private:
  std::multimap<uint32_t, std::span<const uint8_t>> by_tag_;
};

Status SaveVcpu(const StateContext& ctx, const KvmVcpu& v, Writer& w) {
  const uint32_t i = v.index();
  XM_ASSIGN_OR_RETURN(auto cpuid, v.GetCpuid());
  w.Section(kCpuid, i, cpuid.data(), cpuid.size() * sizeof(kvm_cpuid_entry2));
  XM_ASSIGN_OR_RETURN(uint32_t khz, v.GetTscKhz());
  w.Struct(kTscKhz, i, khz);
  if (ctx.sregs2) {
    XM_ASSIGN_OR_RETURN(auto s, v.Get<kvm_sregs2>(KVM_GET_SREGS2, "KVM_GET_SREGS2"));
    w.Struct(kSregs2, i, s);
  } else {
    XM_ASSIGN_OR_RETURN(auto s, v.Get<kvm_sregs>(KVM_GET_SREGS, "KVM_GET_SREGS"));
    w.Struct(kSregs, i, s);
  }
  std::vector<kvm_msr_entry> msrs(ctx.msr_indices.size());
  for (size_t k = 0; k < msrs.size(); ++k) msrs[k].index = ctx.msr_indices[k];
  XM_TRY(v.GetMsrs(msrs));
  w.Section(kMsrs, i, msrs.data(), msrs.size() * sizeof(kvm_msr_entry));
  XM_ASSIGN_OR_RETURN(auto regs, v.Get<kvm_regs>(KVM_GET_REGS, "KVM_GET_REGS"));
  w.Struct(kRegs, i, regs);
  XM_ASSIGN_OR_RETURN(auto fpu, v.Get<kvm_fpu>(KVM_GET_FPU, "KVM_GET_FPU"));
  w.Struct(kFpu, i, fpu);
  XM_ASSIGN_OR_RETURN(auto xsave, v.GetXsave(ctx.xsave_size, ctx.xsave2));
  w.Section(kXsave, i, xsave.data(), xsave.size());
  XM_ASSIGN_OR_RETURN(auto xcrs, v.Get<kvm_xcrs>(KVM_GET_XCRS, "KVM_GET_XCRS"));
  w.Struct(kXcrs, i, xcrs);
  if (ctx.irqchip) {
    XM_ASSIGN_OR_RETURN(auto lapic, v.Get<kvm_lapic_state>(KVM_GET_LAPIC, "KVM_GET_LAPIC"));
    w.Struct(kLapic, i, lapic);
  }
  XM_ASSIGN_OR_RETURN(auto ev, v.Get<kvm_vcpu_events>(KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS"));
  // GET leaves these two off although it fills the fields; SET applies them only when flagged.
  ev.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
  w.Struct(kEvents, i, ev);
  XM_ASSIGN_OR_RETURN(auto mp, v.Get<kvm_mp_state>(KVM_GET_MP_STATE, "KVM_GET_MP_STATE"));
  w.Struct(kMpState, i, mp);
  XM_ASSIGN_OR_RETURN(auto dr, v.Get<kvm_debugregs>(KVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS"));
  w.Struct(kDebugregs, i, dr);
  return {};
}

Status LoadVcpu(const StateContext& ctx, const KvmVcpu& v, const SectionSet& s) {
  const std::string who = " of vCPU " + std::to_string(v.index());
  XM_ASSIGN_OR_RETURN(auto cpuid, s.Array<kvm_cpuid_entry2>(kCpuid, who));
  XM_TRY(v.SetCpuid(cpuid));
  XM_ASSIGN_OR_RETURN(uint32_t khz, s.Struct<uint32_t>(kTscKhz, who));
  XM_ASSIGN_OR_RETURN(uint32_t here_khz, v.GetTscKhz());
  if (khz != here_khz) {
    Status st = v.SetTscKhz(khz);
    if (!st.ok())
      return Error(Code::kIncompatible, "the guest's TSC runs at " + std::to_string(khz) + " kHz, this host's at " +
                                            std::to_string(here_khz) + " kHz and KVM cannot scale it: " + st.message());
  }
  if (s.Has(kSregs2)) {
    if (!ctx.sregs2) return Error(Code::kIncompatible, "kvm: the state has SREGS2 but this KVM lacks KVM_CAP_SREGS2");
    XM_ASSIGN_OR_RETURN(auto sr, s.Struct<kvm_sregs2>(kSregs2, who));
    XM_TRY(v.Set(KVM_SET_SREGS2, sr, "KVM_SET_SREGS2"));
  } else {
    XM_ASSIGN_OR_RETURN(auto sr, s.Struct<kvm_sregs>(kSregs, who));
    XM_TRY(v.Set(KVM_SET_SREGS, sr, "KVM_SET_SREGS"));
  }
  XM_ASSIGN_OR_RETURN(auto msrs, s.Array<kvm_msr_entry>(kMsrs, who));
  XM_TRY(v.SetMsrs(msrs));
  XM_ASSIGN_OR_RETURN(auto regs, s.Struct<kvm_regs>(kRegs, who));
  XM_TRY(v.Set(KVM_SET_REGS, regs, "KVM_SET_REGS"));
  XM_ASSIGN_OR_RETURN(auto fpu, s.Struct<kvm_fpu>(kFpu, who));
  XM_TRY(v.Set(KVM_SET_FPU, fpu, "KVM_SET_FPU"));
  XM_ASSIGN_OR_RETURN(auto xsave, s.Bytes(kXsave, who));
  if (xsave.size() != std::max<size_t>(ctx.xsave_size, 4096))
    return Error(Code::kIncompatible, "kvm: XSAVE area" + who + " is " + std::to_string(xsave.size()) +
                                          " bytes, this host's is " + std::to_string(ctx.xsave_size));
  XM_TRY(v.SetXsave(std::vector<uint8_t>(xsave.begin(), xsave.end())));
  XM_ASSIGN_OR_RETURN(auto xcrs, s.Struct<kvm_xcrs>(kXcrs, who));
  XM_TRY(v.Set(KVM_SET_XCRS, xcrs, "KVM_SET_XCRS"));
  if (ctx.irqchip) {
    XM_ASSIGN_OR_RETURN(auto lapic, s.Struct<kvm_lapic_state>(kLapic, who));
    XM_TRY(v.Set(KVM_SET_LAPIC, lapic, "KVM_SET_LAPIC"));
  }
  XM_ASSIGN_OR_RETURN(auto ev, s.Struct<kvm_vcpu_events>(kEvents, who));
  XM_TRY(v.Set(KVM_SET_VCPU_EVENTS, ev, "KVM_SET_VCPU_EVENTS"));
  XM_ASSIGN_OR_RETURN(auto mp, s.Struct<kvm_mp_state>(kMpState, who));
  XM_TRY(v.Set(KVM_SET_MP_STATE, mp, "KVM_SET_MP_STATE"));
  XM_ASSIGN_OR_RETURN(auto dr, s.Struct<kvm_debugregs>(kDebugregs, who));
  XM_TRY(v.Set(KVM_SET_DEBUGREGS, dr, "KVM_SET_DEBUGREGS"));
  return {};
}

}  // namespace

Result<std::vector<uint8_t>> SaveState(const StateContext& ctx) {
  Writer w;
  w.U32(kStateMagic);
  w.U32(kStateVersion);
  w.U32(static_cast<uint32_t>(ctx.vcpus->size()));
  w.U32((ctx.sregs2 ? kFlagSregs2 : 0) | (ctx.irqchip ? kFlagIrqchip : 0));
  for (const auto& v : *ctx.vcpus) XM_TRY_CTX(SaveVcpu(ctx, v, w), "save vCPU " + std::to_string(v.index()));
  XM_ASSIGN_OR_RETURN(auto clock, ctx.vm->GetClock());
  w.Struct(kClock, kVmWide, clock);
  if (ctx.irqchip) {
    for (uint32_t chip : {KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC}) {
      XM_ASSIGN_OR_RETURN(auto c, ctx.vm->GetIrqchip(chip));
      w.Struct(kIrqchip, kVmWide, c);
    }
  }
  return w.Take();
}

Status LoadState(const StateContext& ctx, std::span<const uint8_t> blob) {
  XM_ASSIGN_OR_RETURN(Parsed p, Parse(blob));
  if (p.vcpus != ctx.vcpus->size())
    return Error(Code::kIncompatible, "kvm: the state is for " + std::to_string(p.vcpus) + " vCPUs, this guest has " +
                                          std::to_string(ctx.vcpus->size()));
  if (((p.flags & kFlagIrqchip) != 0) != ctx.irqchip)
    return Error(Code::kIncompatible, "kvm: the source and this guest disagree on the in-kernel irqchip");
  std::vector<SectionSet> per_vcpu(p.vcpus);
  SectionSet vm_wide;
  for (const auto& s : p.sections) XM_TRY((s.vcpu == kVmWide ? vm_wide : per_vcpu[s.vcpu]).Add(s));
  for (auto& v : *ctx.vcpus) XM_TRY_CTX(LoadVcpu(ctx, v, per_vcpu[v.index()]), "load vCPU " + std::to_string(v.index()));
  XM_ASSIGN_OR_RETURN(auto clock, vm_wide.Struct<kvm_clock_data>(kClock, " of the VM"));
  XM_TRY(ctx.vm->SetClock(clock));
  if (ctx.irqchip) {
    int chips = 0;
    auto [b, e] = vm_wide.Range(kIrqchip);
    for (auto it = b; it != e; ++it, ++chips) {
      if (it->second.size() != sizeof(kvm_irqchip))
        return Error(Code::kProtocol, "kvm: irqchip section of " + std::to_string(it->second.size()) + " bytes");
      kvm_irqchip c;
      std::memcpy(&c, it->second.data(), sizeof c);
      XM_TRY(ctx.vm->SetIrqchip(c));
    }
    if (chips != 3) return Error(Code::kProtocol, "kvm: the state has " + std::to_string(chips) + " of 3 irqchips");
  }
  return {};
}

Result<StateSummary> SummarizeState(std::span<const uint8_t> blob) {
  XM_ASSIGN_OR_RETURN(Parsed p, Parse(blob));
  StateSummary s;
  s.version = p.version;
  s.vcpus = p.vcpus;
  std::map<uint32_t, uint64_t> bytes;
  for (const auto& sec : p.sections) bytes[sec.tag] += sec.bytes.size();
  for (auto [tag, n] : bytes) s.section_bytes.emplace_back(TagName(tag), n);
  return s;
}

}  // namespace xm::kvm
