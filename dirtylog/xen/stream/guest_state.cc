#include "dirtylog/xen/stream/guest_state.h"

#include <cstring>

#include "dirtylog/xen/stream/hvm_cpu_layout.h"
#include "dirtylog/xen/stream/le.h"
#include "dirtylog/xen/stream/records.h"

namespace xm::xen {
namespace {

constexpr char kBlobMagic[8] = {'X', 'M', 'X', 'E', 'N', 'G', 'S', '1'};
constexpr uint32_t kBlobSynthetic = 1u << 0;

enum BlobKind : uint32_t {
  kBlobEnd = 0,
  kBlobTsc = 1,
  kBlobParams = 2,
  kBlobHvmContext = 3,
  kBlobEmuXenstore = 4,
  kBlobEmuContext = 5,
};

void PutEntry(std::vector<uint8_t>& out, uint32_t kind, std::span<const uint8_t> body) {
  PutLe32(out, kind);
  PutLe32(out, static_cast<uint32_t>(body.size()));
  PutBytes(out, body);
  PadTo8(out);
}

std::vector<uint8_t> EmulatorBody(const EmulatorRecord& r) {
  std::vector<uint8_t> b;
  PutLe32(b, r.emulator_id);
  PutLe32(b, r.index);
  PutBytes(b, r.data);
  return b;
}

}  // namespace

std::vector<uint8_t> EncodeGuestStateBlob(const XenGuestState& st) {
  std::vector<uint8_t> out(kBlobMagic, kBlobMagic + 8);
  PutLe32(out, st.synthetic ? kBlobSynthetic : 0);
  PutLe32(out, 0);
  if (st.tsc) {
    std::vector<uint8_t> b;
    PutLe32(b, st.tsc->mode);
    PutLe32(b, st.tsc->khz);
    PutLe64(b, st.tsc->nsec);
    PutLe32(b, st.tsc->incarnation);
    PutEntry(out, kBlobTsc, b);
  }
  if (!st.params.empty()) {
    std::vector<uint8_t> b;
    for (const auto& p : st.params) {
      PutLe64(b, p.index);
      PutLe64(b, p.value);
    }
    PutEntry(out, kBlobParams, b);
  }
  if (!st.hvm_context.empty()) PutEntry(out, kBlobHvmContext, st.hvm_context);
  for (const auto& r : st.emulator_xenstore) PutEntry(out, kBlobEmuXenstore, EmulatorBody(r));
  for (const auto& r : st.emulator_context) PutEntry(out, kBlobEmuContext, EmulatorBody(r));
  PutEntry(out, kBlobEnd, {});
  return out;
}

bool IsGuestStateBlob(std::span<const uint8_t> blob) {
  return blob.size() >= 16 && std::memcmp(blob.data(), kBlobMagic, 8) == 0;
}

Result<XenGuestState> DecodeGuestStateBlob(std::span<const uint8_t> blob) {
  if (!IsGuestStateBlob(blob)) return Error(Code::kProtocol, "xen guest state: not an xmotion Xen vCPU blob (bad magic)");
  XenGuestState st;
  LeReader r(blob);
  uint32_t flags = 0, reserved = 0;
  r.Skip(8);
  r.U32(flags);
  r.U32(reserved);
  if (flags & ~kBlobSynthetic) return Error(Code::kProtocol, "xen guest state: unknown flags " + std::to_string(flags));
  st.synthetic = flags & kBlobSynthetic;
  for (;;) {
    uint32_t kind = 0, len = 0;
    size_t at = r.pos();
    if (!r.U32(kind) || !r.U32(len))
      return Error(Code::kProtocol, "xen guest state: truncated entry header at offset " + std::to_string(at));
    std::vector<uint8_t> body;
    if (!r.Bytes(len, body) || !r.Skip((8 - len % 8) % 8))
      return Error(Code::kProtocol, "xen guest state: entry " + std::to_string(kind) + " at offset " +
                                        std::to_string(at) + " runs past the blob");
    LeReader b(body);
    switch (kind) {
      case kBlobEnd:
        if (len != 0 || r.left() != 0) return Error(Code::kProtocol, "xen guest state: bytes after the end entry");
        return st;
      case kBlobTsc: {
        TscInfo t;
        if (len != 20 || !b.U32(t.mode) || !b.U32(t.khz) || !b.U64(t.nsec) || !b.U32(t.incarnation))
          return Error(Code::kProtocol, "xen guest state: TSC entry of " + std::to_string(len) + " bytes, want 20");
        st.tsc = t;
        break;
      }
      case kBlobParams:
        if (len % 16) return Error(Code::kProtocol, "xen guest state: HVM params entry not a multiple of 16 bytes");
        for (uint32_t i = 0; i < len / 16; ++i) {
          HvmParam p;
          b.U64(p.index);
          b.U64(p.value);
          st.params.push_back(p);
        }
        break;
      case kBlobHvmContext:
        st.hvm_context = std::move(body);
        break;
      case kBlobEmuXenstore:
      case kBlobEmuContext: {
        EmulatorRecord e;
        if (!b.U32(e.emulator_id) || !b.U32(e.index))
          return Error(Code::kProtocol, "xen guest state: emulator entry shorter than its header");
        e.data.assign(body.begin() + 8, body.end());
        (kind == kBlobEmuXenstore ? st.emulator_xenstore : st.emulator_context).push_back(std::move(e));
        break;
      }
      default:
        return Error(Code::kProtocol, "xen guest state: unknown entry kind " + std::to_string(kind));
    }
  }
}

Result<std::vector<HvmSaveEntry>> WalkHvmContext(std::span<const uint8_t> ctx) {
  std::vector<HvmSaveEntry> out;
  size_t off = 0;
  bool ended = false;
  while (off < ctx.size()) {
    if (ended)
      return Error(Code::kProtocol, "HVM context: " + std::to_string(ctx.size() - off) + " bytes after the END entry");
    if (ctx.size() - off < 8)
      return Error(Code::kProtocol, "HVM context: truncated descriptor at offset " + std::to_string(off));
    HvmSaveEntry e;
    e.typecode = GetLe16(ctx.data() + off);
    e.instance = GetLe16(ctx.data() + off + 2);
    e.length = GetLe32(ctx.data() + off + 4);
    e.offset = static_cast<uint32_t>(off + 8);
    if (ctx.size() - e.offset < e.length)
      return Error(Code::kProtocol, "HVM context: entry type " + std::to_string(e.typecode) + " instance " +
                                        std::to_string(e.instance) + " at offset " + std::to_string(off) +
                                        " runs past the end (" + std::to_string(e.length) + " bytes)");
    if (out.empty()) {
      if (e.typecode != kHvmSaveHeader || e.length < kHvmSaveHeaderSize)
        return Error(Code::kProtocol, "HVM context: does not start with a HEADER entry (type " +
                                          std::to_string(e.typecode) + ")");
      const uint8_t* h = ctx.data() + e.offset;
      if (GetLe32(h) != kHvmFileMagic)
        return Error(Code::kProtocol, "HVM context: bad header magic " + std::to_string(GetLe32(h)));
      if (GetLe32(h + 4) != kHvmFileVersion)
        return Error(Code::kProtocol, "HVM context: unsupported version " + std::to_string(GetLe32(h + 4)));
    } else if (e.typecode == kHvmSaveHeader) {
      return Error(Code::kProtocol, "HVM context: second HEADER entry at offset " + std::to_string(off));
    }
    if (e.typecode == kHvmSaveEnd) {
      if (e.length != 0) return Error(Code::kProtocol, "HVM context: END entry with a body");
      ended = true;
    }
    out.push_back(e);
    off = e.offset + e.length;
  }
  if (!ended) return Error(Code::kProtocol, "HVM context: no END entry");
  return out;
}

std::vector<uint8_t> SyntheticHvmContext(uint32_t vcpus, uint32_t cpuid_leaf1_eax, uint32_t gtsc_khz) {
  std::vector<uint8_t> out;
  auto descriptor = [&](uint16_t type, uint16_t instance, uint32_t len) {
    PutLe16(out, type);
    PutLe16(out, instance);
    PutLe32(out, len);
  };
  descriptor(kHvmSaveHeader, 0, kHvmSaveHeaderSize);
  PutLe32(out, kHvmFileMagic);
  PutLe32(out, kHvmFileVersion);
  PutLe64(out, kSyntheticChangeset);
  PutLe32(out, cpuid_leaf1_eax);
  PutLe32(out, gtsc_khz);
  for (uint32_t v = 0; v < vcpus; ++v) {
    descriptor(kHvmSaveCpu, static_cast<uint16_t>(v), kHvmHwCpuSize);
    std::vector<uint8_t> cpu = PowerOnCpuState(cpuid_leaf1_eax);
    PutBytes(out, cpu);
  }
  descriptor(kHvmSaveEnd, 0, 0);
  return out;
}

bool IsSyntheticHvmContext(std::span<const uint8_t> ctx) {
  auto entries = WalkHvmContext(ctx);
  if (!entries.ok()) return false;
  return GetLe64(ctx.data() + (*entries)[0].offset + 8) == kSyntheticChangeset;
}

std::vector<uint64_t> RingPfns(const XenGuestState& st) {
  std::vector<uint64_t> out;
  for (const auto& p : st.params)
    if (p.index == kHvmParamConsolePfn || p.index == kHvmParamStorePfn || p.index == kHvmParamIoreqPfn ||
        p.index == kHvmParamBufioreqPfn)
      out.push_back(p.value);
  return out;
}

XenGuestState SyntheticGuestState(uint32_t vcpus, uint32_t cpuid_leaf1_eax) {
  XenGuestState st;
  st.synthetic = true;
  // Mode 0 is TSC_MODE_DEFAULT; the frequency of a non-Xen guest's TSC is not
  // known here, so 0 says "unknown" rather than inventing one.
  st.tsc = TscInfo{};
  st.hvm_context = SyntheticHvmContext(vcpus, cpuid_leaf1_eax, 0);
  return st;
}

}  // namespace xm::xen
