#include "dirtylog/xen/stream/reader.h"

#include <algorithm>
#include <cstring>

#include "dirtylog/xen/stream/le.h"

namespace xm::xen {

const uint8_t* XenImage::Page(uint64_t pfn) const {
  auto it = index_.find(pfn);
  return it == index_.end() ? nullptr : arena_.data() + it->second;
}

std::vector<uint64_t> XenImage::Pfns() const {
  std::vector<uint64_t> out;
  out.reserve(index_.size());
  for (const auto& [pfn, off] : index_) out.push_back(pfn);
  std::sort(out.begin(), out.end());
  return out;
}

void XenImage::StorePage(uint64_t pfn, const uint8_t* data) {
  auto [it, fresh] = index_.try_emplace(pfn, arena_.size());
  if (fresh) arena_.resize(arena_.size() + kXenPageSize);
  std::memcpy(arena_.data() + it->second, data, kXenPageSize);
  std::erase(invalid_, pfn);
}

void XenImage::MarkInvalid(uint64_t pfn) {
  if (index_.count(pfn)) return;  // a hole after data: Xen keeps the page it has
  if (std::find(invalid_.begin(), invalid_.end(), pfn) == invalid_.end()) invalid_.push_back(pfn);
}

namespace {

enum class LibxcStop { kEnd, kCheckpoint };

class Reader {
 public:
  Reader(ByteSource& src, const ReadOptions& opts) : src_(src), opts_(opts) { img_.framing = opts.framing; }

  Result<XenImage> Run() {
    Status st = RunInner();
    if (!st.ok()) return std::move(st).With("xen " + std::string(FramingName(opts_.framing)) + " stream");
    img_.bytes = src_.offset();
    return std::move(img_);
  }

 private:
  Status RunInner() {
    if (opts_.framing == Framing::kXl) XM_TRY(XlHeader());
    if (opts_.framing == Framing::kLibxc) {
      for (bool first = true;; first = false) {
        XM_ASSIGN_OR_RETURN(LibxcStop stop, Libxc(first));
        if (stop == LibxcStop::kEnd) return {};
      }
    }
    return Libxl();
  }

  std::string At(uint64_t off) const { return "offset " + std::to_string(off); }

  Status XlHeader() {
    uint8_t h[kXlHeaderSize];
    XM_TRY_CTX(src_.ReadExact(h, sizeof h), "xl header");
    if (std::memcmp(h, kXlMagic.data(), kXlMagic.size()) != 0)
      return Error(Code::kProtocol, "xl header: bad magic (not an xl save file)");
    uint32_t order = GetLe32(h + 32), mandatory = GetLe32(h + 36), optional_flags = GetLe32(h + 40),
             optlen = GetLe32(h + 44);
    if (order != kXlByteorder) return Error(Code::kProtocol, "xl header: byte order is not this host's");
    if (mandatory & ~(kXlFlagJson | kXlFlagStreamV2))
      return Error(Code::kProtocol, "xl header: unknown mandatory flags " + std::to_string(mandatory));
    if (!(mandatory & kXlFlagStreamV2))
      return Error(Code::kProtocol, "xl header: legacy (pre-v2) stream, not supported");
    (void)optional_flags;  // unknown optional flags may be ignored (xl.h)
    if (optlen > (16u << 20)) return Error(Code::kProtocol, "xl header: " + std::to_string(optlen) + " bytes of optional data");
    std::vector<uint8_t> opt(optlen);
    XM_TRY_CTX(src_.ReadExact(opt.data(), opt.size()), "xl header optional data");
    if (optlen >= 4) {
      uint32_t clen = GetLe32(opt.data());
      if (clen > optlen - 4) return Error(Code::kProtocol, "xl header: config length exceeds the optional data");
      std::string cfg(reinterpret_cast<const char*>(opt.data()) + 4, clen);
      if (!cfg.empty() && cfg.back() == '\0') cfg.pop_back();
      if (!cfg.empty() && !(mandatory & kXlFlagJson))
        return Error(Code::kProtocol, "xl header: config present without the JSON flag (old xl text config)");
      img_.xl_config_json = std::move(cfg);
    }
    return {};
  }

  Status RecordHeader(uint32_t& type, uint32_t& len, uint64_t& at) {
    uint8_t h[8];
    at = src_.offset();
    XM_TRY_CTX(src_.ReadExact(h, 8), "record header at " + At(at));
    type = GetLe32(h);
    len = GetLe32(h + 4);
    return {};
  }

  Status Body(uint32_t len, std::vector<uint8_t>& body, std::string_view name, uint64_t at) {
    if (len > kMaxRecordLength)
      return Error(Code::kProtocol, std::string(name) + " at " + At(at) + ": length " + std::to_string(len) +
                                        " exceeds Xen's limit");
    size_t padded = (static_cast<size_t>(len) + 7) & ~size_t{7};
    body.resize(padded);
    XM_TRY_CTX(src_.ReadExact(body.data(), padded), std::string(name) + " at " + At(at));
    for (size_t i = len; i < padded; ++i)
      if (body[i] != 0) return Error(Code::kProtocol, std::string(name) + " at " + At(at) + ": non-zero padding");
    body.resize(len);
    return {};
  }

  Status Libxl() {
    uint8_t h[kLibxlHeaderSize];
    XM_TRY_CTX(src_.ReadExact(h, sizeof h), "libxl header");
    if (GetBe64(h) != kLibxlIdent) return Error(Code::kProtocol, "libxl header: bad ident (not a libxl stream)");
    if (GetBe32(h + 8) != kLibxlVersion)
      return Error(Code::kProtocol, "libxl header: version " + std::to_string(GetBe32(h + 8)) + ", want 2");
    uint32_t options = GetBe32(h + 12);
    if (options & 1) return Error(Code::kProtocol, "libxl header: big-endian stream, not supported");
    if (options & ~3u) return Error(Code::kProtocol, "libxl header: reserved option bits set");
    bool libxc_started = false, libxc_done = false, in_checkpoint = false;
    std::vector<EmulatorRecord> xs, ctx;
    std::vector<uint8_t> body;
    for (;;) {
      uint32_t type = 0, len = 0;
      uint64_t at = 0;
      XM_TRY(RecordHeader(type, len, at));
      std::string name = "libxl " + std::string(LibxlRecName(type));
      XM_TRY(Body(len, body, name, at));
      switch (static_cast<LibxlRec>(type)) {
        case LibxlRec::kEnd:
          if (len) return Error(Code::kProtocol, name + " at " + At(at) + ": non-empty");
          if (!libxc_done) return Error(Code::kProtocol, name + " at " + At(at) + ": before the libxc stream ended");
          if (in_checkpoint) return Error(Code::kProtocol, name + " at " + At(at) + ": inside a checkpoint");
          if (!xs.empty() || !ctx.empty()) {
            img_.state.emulator_xenstore = std::move(xs);
            img_.state.emulator_context = std::move(ctx);
          }
          return {};
        case LibxlRec::kLibxcContext: {
          if (len) return Error(Code::kProtocol, name + " at " + At(at) + ": non-empty");
          if (libxc_started) return Error(Code::kProtocol, name + " at " + At(at) + ": a second libxc stream");
          libxc_started = true;
          XM_ASSIGN_OR_RETURN(LibxcStop stop, Libxc(true));
          if (stop == LibxcStop::kEnd) libxc_done = true;
          else in_checkpoint = true;
          break;
        }
        case LibxlRec::kEmulatorXenstoreData:
        case LibxlRec::kEmulatorContext: {
          if (!libxc_started) return Error(Code::kProtocol, name + " at " + At(at) + ": before the libxc stream");
          if (len < 8) return Error(Code::kProtocol, name + " at " + At(at) + ": shorter than its emulator header");
          EmulatorRecord e{GetLe32(body.data()), GetLe32(body.data() + 4), {body.begin() + 8, body.end()}};
          if (e.emulator_id > static_cast<uint32_t>(EmulatorId::kQemuUpstream))
            return Error(Code::kProtocol, name + " at " + At(at) + ": unknown emulator id " + std::to_string(e.emulator_id));
          if (type == static_cast<uint32_t>(LibxlRec::kEmulatorXenstoreData)) {
            XM_TRY_CTX(CheckXenstorePairs(e.data), name + " at " + At(at));
            xs.push_back(std::move(e));
          } else {
            ctx.push_back(std::move(e));
          }
          break;
        }
        case LibxlRec::kCheckpointEnd: {
          if (len) return Error(Code::kProtocol, name + " at " + At(at) + ": non-empty");
          if (!in_checkpoint) return Error(Code::kProtocol, name + " at " + At(at) + ": not inside a checkpoint");
          img_.state.emulator_xenstore = std::move(xs);
          img_.state.emulator_context = std::move(ctx);
          xs.clear();
          ctx.clear();
          in_checkpoint = false;
          // libxc carries on where it stopped: no second image header.
          XM_ASSIGN_OR_RETURN(LibxcStop stop, Libxc(false));
          if (stop == LibxcStop::kEnd) libxc_done = true;
          else in_checkpoint = true;
          break;
        }
        case LibxlRec::kCheckpointState:
          return Error(Code::kProtocol, name + " at " + At(at) + ": COLO back-channel record in a forward stream");
        default:
          if (type & 0x80000000u) break;  // optional: may be skipped
          return Error(Code::kProtocol, "libxl record type " + std::to_string(type) + " at " + At(at) + " is unknown");
      }
    }
  }

  static Status CheckXenstorePairs(const std::vector<uint8_t>& d) {
    if (d.empty()) return {};
    if (d.back() != 0) return Error(Code::kProtocol, "xenstore data not NUL-terminated");
    size_t strings = static_cast<size_t>(std::count(d.begin(), d.end(), uint8_t{0}));
    if (strings % 2) return Error(Code::kProtocol, "xenstore data has an odd number of strings");
    return {};
  }

  Status ImageHeaders() {
    uint8_t h[kImageHeaderSize + kDomainHeaderSize];
    XM_TRY_CTX(src_.ReadExact(h, sizeof h), "libxc image header");
    if (GetBe64(h) != kImageMarker) return Error(Code::kProtocol, "libxc image header: bad marker (legacy stream?)");
    if (GetBe32(h + 8) != kImageId) return Error(Code::kProtocol, "libxc image header: bad id (not \"XENF\")");
    uint32_t version = GetBe32(h + 12);
    if (version < 2 || version > 3)
      return Error(Code::kProtocol, "libxc image header: version " + std::to_string(version) + ", want 2 or 3");
    uint16_t options = GetBe16(h + 16);
    if (options & 1) return Error(Code::kProtocol, "libxc image header: big-endian stream, not supported");
    if (options & 0xfffe) return Error(Code::kProtocol, "libxc image header: reserved option bits set");
    if (GetBe16(h + 18) || GetBe32(h + 20)) return Error(Code::kProtocol, "libxc image header: reserved bits set");
    const uint8_t* d = h + kImageHeaderSize;
    uint32_t type = GetLe32(d);
    if (type == kDomainTypeX86Pv)
      return Error(Code::kUnsupported, "libxc domain header: x86 PV guest; xmotion handles HVM and PVH guests only");
    if (type != kDomainTypeX86Hvm)
      return Error(Code::kProtocol, "libxc domain header: unknown domain type " + std::to_string(type));
    if (GetLe16(d + 4) != kPageShift)
      return Error(Code::kProtocol, "libxc domain header: page shift " + std::to_string(GetLe16(d + 4)) + ", want 12");
    if (GetLe16(d + 6)) return Error(Code::kProtocol, "libxc domain header: reserved bits set");
    img_.libxc_version = version;
    img_.domain_type = type;
    img_.xen_major = GetLe32(d + 8);
    img_.xen_minor = GetLe32(d + 12);
    return {};
  }

  // Reads libxc records until END, or CHECKPOINT in a checkpointed stream.
  Result<LibxcStop> Libxc(bool first) {
    if (first) XM_TRY(ImageHeaders());
    std::vector<uint8_t> body;
    for (;;) {
      uint32_t type = 0, len = 0;
      uint64_t at = 0;
      XM_TRY(RecordHeader(type, len, at));
      std::string name = "libxc " + std::string(LibxcRecName(type));
      XM_TRY(Body(len, body, name, at));
      auto bad = [&](const std::string& why) { return Error(Code::kProtocol, name + " at " + At(at) + ": " + why); };
      auto empty_only = [&]() -> Status { return len ? bad("non-empty") : Status{}; };
      const bool v3 = img_.libxc_version >= 3;
      switch (static_cast<LibxcRec>(type)) {
        case LibxcRec::kEnd:
          XM_TRY(empty_only());
          if (opts_.checkpointed) {
            if (segment_dirty_ || img_.checkpoints == 0)
              return bad("records after the last checkpoint (a Remus receiver would drop them)");
          } else {
            XM_TRY(EndOfState(name, at));
          }
          return LibxcStop::kEnd;
        case LibxcRec::kCheckpoint:
          XM_TRY(empty_only());
          if (!opts_.checkpointed) return bad("checkpoint in a stream that is not checkpointed");
          XM_TRY(EndOfState(name, at));
          ++img_.checkpoints;
          segment_dirty_ = false;
          return LibxcStop::kCheckpoint;
        case LibxcRec::kStaticDataEnd:
          XM_TRY(empty_only());
          if (!v3) return bad("in a v2 stream");
          if (static_end_) return bad("seen twice");
          static_end_ = true;
          break;
        case LibxcRec::kX86CpuidPolicy:
        case LibxcRec::kX86MsrPolicy: {
          if (!v3) return bad("in a v2 stream");
          if (static_end_) return bad("after STATIC_DATA_END");
          if (!img_.policy) img_.policy = XenCpuPolicy{};
          if (type == static_cast<uint32_t>(LibxcRec::kX86CpuidPolicy)) {
            if (!img_.policy->cpuid.empty()) return bad("seen twice");
            XM_ASSIGN_OR_RETURN(img_.policy->cpuid, ParseCpuidLeaves(body));
          } else {
            if (!img_.policy->msrs.empty()) return bad("seen twice");
            XM_ASSIGN_OR_RETURN(img_.policy->msrs, ParseMsrs(body));
          }
          break;
        }
        case LibxcRec::kPageData:
          if (v3 && !static_end_) return bad("before STATIC_DATA_END");
          static_end_ = true;  // v2: inferred at the first PAGE_DATA, as Xen does
          XM_TRY_CTX(PageData(body), name + " at " + At(at));
          segment_dirty_ = true;
          break;
        case LibxcRec::kX86TscInfo: {
          if (len != kTscInfoSize) return bad(std::to_string(len) + " bytes, want 24");
          if (GetLe32(body.data() + 20)) return bad("reserved bits set");
          img_.state.tsc = TscInfo{GetLe32(body.data()), GetLe32(body.data() + 4), GetLe64(body.data() + 8),
                                   GetLe32(body.data() + 16)};
          segment_dirty_ = true;
          break;
        }
        case LibxcRec::kHvmParams: {
          if (len < 8) return bad("shorter than its header");
          uint32_t count = GetLe32(body.data());
          if (GetLe32(body.data() + 4)) return bad("reserved field not zero");
          if (len != 8 + uint64_t{count} * 16)
            return bad(std::to_string(len) + " bytes for " + std::to_string(count) + " params");
          img_.state.params.clear();
          for (uint32_t i = 0; i < count; ++i)
            img_.state.params.push_back({GetLe64(body.data() + 8 + 16 * i), GetLe64(body.data() + 16 + 16 * i)});
          segment_dirty_ = true;
          break;
        }
        case LibxcRec::kHvmContext: {
          if (len == 0) return bad("empty HVM context");
          auto walk = WalkHvmContext(body);
          if (!walk.ok()) return std::move(walk).With(name + " at " + At(at)).status();
          img_.state.hvm_context = body;
          img_.state.synthetic = IsSyntheticHvmContext(body);
          have_context_ = true;
          segment_dirty_ = true;
          break;
        }
        case LibxcRec::kVerify:
          return bad("VERIFY (debug re-send of all memory) is not supported by xmotion's reader");
        case LibxcRec::kToolstack:
          return bad("deprecated TOOLSTACK record");
        case LibxcRec::kCheckpointDirtyPfnList:
          return bad("COLO back-channel record in a forward stream");
        case LibxcRec::kX86PvInfo:
        case LibxcRec::kX86PvP2mFrames:
        case LibxcRec::kX86PvVcpuBasic:
        case LibxcRec::kX86PvVcpuExtended:
        case LibxcRec::kX86PvVcpuXsave:
        case LibxcRec::kX86PvVcpuMsrs:
        case LibxcRec::kSharedInfo:
          return bad("PV-only record in an HVM stream");
        default:
          if (type & 0x80000000u) break;  // optional record: may be ignored
          return Error(Code::kProtocol, "libxc record type " + std::to_string(type) + " at " + At(at) +
                                            " is unknown and mandatory");
      }
    }
  }

  // The stream says the guest state is complete: an HVM guest needs its context.
  Status EndOfState(const std::string& name, uint64_t at) {
    if (!have_context_)
      return Error(Code::kProtocol, name + " at " + At(at) + ": no HVM_CONTEXT before it (Xen's restore would fail)");
    return {};
  }

  Status PageData(const std::vector<uint8_t>& body) {
    if (body.size() < 16) return Error(Code::kProtocol, "shorter than its header and one pfn");
    uint32_t count = GetLe32(body.data());
    if (count == 0) return Error(Code::kProtocol, "count is 0");
    if (GetLe32(body.data() + 4)) return Error(Code::kProtocol, "reserved field not zero");
    if (body.size() < 8 + uint64_t{count} * 8)
      return Error(Code::kProtocol, std::to_string(body.size()) + " bytes cannot hold " + std::to_string(count) + " pfns");
    uint64_t with_data = 0;
    for (uint32_t i = 0; i < count; ++i) {
      uint64_t w = GetLe64(body.data() + 8 + 8 * i);
      uint32_t type = static_cast<uint32_t>(w >> kPfnTypeShift);
      if (w & kPfnReservedMask) return Error(Code::kProtocol, "pfn[" + std::to_string(i) + "] has reserved bits set");
      if (!PfnTypeKnown(type))
        return Error(Code::kProtocol, "pfn[" + std::to_string(i) + "] has unknown type " + std::to_string(type));
      if (type != static_cast<uint32_t>(PfnType::kNotab) && PfnTypeHasData(type))
        return Error(Code::kProtocol, "pfn[" + std::to_string(i) + "] is a page-table page (PV only)");
      if (PfnTypeHasData(type)) ++with_data;
    }
    uint64_t want = 8 + uint64_t{count} * 8 + with_data * kXenPageSize;
    if (body.size() != want)
      return Error(Code::kProtocol, std::to_string(body.size()) + " bytes, want " + std::to_string(want) + " for " +
                                        std::to_string(with_data) + " pages");
    const uint8_t* data = body.data() + 8 + uint64_t{count} * 8;
    for (uint32_t i = 0; i < count; ++i) {
      uint64_t w = GetLe64(body.data() + 8 + 8 * i);
      uint64_t pfn = w & kPfnMask;
      if (PfnTypeHasData(static_cast<uint32_t>(w >> kPfnTypeShift))) {
        img_.StorePage(pfn, data);
        data += kXenPageSize;
        ++img_.page_versions;
      } else {
        img_.MarkInvalid(pfn);
      }
    }
    ++img_.page_records;
    return {};
  }

  ByteSource& src_;
  ReadOptions opts_;
  XenImage img_;
  bool static_end_ = false;
  bool have_context_ = false;
  bool segment_dirty_ = false;
};

}  // namespace

Result<XenImage> ReadStream(ByteSource& src, const ReadOptions& opts) { return Reader(src, opts).Run(); }

}  // namespace xm::xen
