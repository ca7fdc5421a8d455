#include "dirtylog/xen/stream/writer.h"

#include <vector>

#include "dirtylog/xen/stream/le.h"

namespace xm::xen {
namespace {

const uint8_t kZeros[8] = {};

}  // namespace

std::string_view FramingName(Framing f) {
  switch (f) {
    case Framing::kLibxc: return "libxc";
    case Framing::kLibxl: return "libxl";
    case Framing::kXl: return "xl";
  }
  return "?";
}

StreamWriter::StreamWriter(ByteSink& sink, StreamOptions opts) : sink_(sink), opts_(std::move(opts)) {}

Status StreamWriter::Check(Phase want, std::string_view what) {
  if (phase_ == want) return {};
  static constexpr const char* kNames[] = {"before Begin()", "while writing pages", "after the end", "after a failure"};
  return Error(Code::kInternal, "xen stream: " + std::string(what) + " called " + kNames[static_cast<int>(phase_)]);
}

Status StreamWriter::Put(std::span<const iovec> iov) {
  Status st = sink_.Write(iov);
  if (!st.ok()) phase_ = Phase::kFailed;
  return st;
}

// A record of either layer: both share the {u32 type, u32 length, body, pad to 8} layout.
Status StreamWriter::Record(uint32_t type, std::span<const uint8_t> body) {
  if (body.size() > kMaxRecordLength)
    return Error(Code::kInternal, "xen stream: record " + std::to_string(type) + " of " + std::to_string(body.size()) +
                                      " bytes exceeds Xen's limit");
  std::vector<uint8_t> hdr;
  PutLe32(hdr, type);
  PutLe32(hdr, static_cast<uint32_t>(body.size()));
  iovec iov[3] = {{hdr.data(), hdr.size()},
                  {const_cast<uint8_t*>(body.data()), body.size()},
                  {const_cast<uint8_t*>(kZeros), (8 - body.size() % 8) % 8}};
  ++stats_.records;
  return Put(iov);
}

Status StreamWriter::Begin(const XenCpuPolicy* policy) {
  XM_TRY(Check(Phase::kNew, "Begin()"));
  if (opts_.libxc_version != 2 && opts_.libxc_version != 3)
    return Error(Code::kInvalidArgument, "xen stream: libxc stream version " + std::to_string(opts_.libxc_version) +
                                             " (2 or 3 supported)");
  if (policy && opts_.libxc_version < 3)
    return Error(Code::kInvalidArgument, "xen stream: a v2 stream cannot carry a CPU policy (use v3)");
  std::vector<uint8_t> head;
  if (opts_.framing == Framing::kXl) {
    head.insert(head.end(), kXlMagic.begin(), kXlMagic.end());
    std::vector<uint8_t> optional;
    std::string cfg = opts_.xl_config_json;
    if (!cfg.empty()) cfg.push_back('\0');  // xl stores the JSON with its terminator
    PutLe32(optional, static_cast<uint32_t>(cfg.size()));
    optional.insert(optional.end(), cfg.begin(), cfg.end());
    PutLe32(head, kXlByteorder);
    PutLe32(head, kXlFlagStreamV2 | (cfg.empty() ? 0 : kXlFlagJson));
    PutLe32(head, 0);
    PutLe32(head, static_cast<uint32_t>(optional.size()));
    PutBytes(head, optional);
  }
  if (opts_.framing != Framing::kLibxc) {
    PutBe64(head, kLibxlIdent);
    PutBe32(head, kLibxlVersion);
    PutBe32(head, 0);  // little-endian, not legacy-converted
    PutLe32(head, static_cast<uint32_t>(LibxlRec::kLibxcContext));
    PutLe32(head, 0);
    ++stats_.records;
  }
  PutBe64(head, kImageMarker);
  PutBe32(head, kImageId);
  PutBe32(head, opts_.libxc_version);
  PutBe16(head, 0);  // options: little-endian
  PutBe16(head, 0);
  PutBe32(head, 0);
  PutLe32(head, kDomainTypeX86Hvm);
  PutLe16(head, kPageShift);
  PutLe16(head, 0);
  PutLe32(head, opts_.xen_major);
  PutLe32(head, opts_.xen_minor);
  iovec iov{head.data(), head.size()};
  XM_TRY_CTX(Put(std::span<const iovec>(&iov, 1)), "xen stream headers");
  phase_ = Phase::kBody;
  if (opts_.libxc_version >= 3) {
    if (policy && !policy->cpuid.empty())
      XM_TRY_CTX(Record(static_cast<uint32_t>(LibxcRec::kX86CpuidPolicy), SerialiseCpuidLeaves(policy->cpuid)),
                 "X86_CPUID_POLICY");
    if (policy && !policy->msrs.empty())
      XM_TRY_CTX(Record(static_cast<uint32_t>(LibxcRec::kX86MsrPolicy), SerialiseMsrs(policy->msrs)), "X86_MSR_POLICY");
    XM_TRY_CTX(Record(static_cast<uint32_t>(LibxcRec::kStaticDataEnd), {}), "STATIC_DATA_END");
  }
  return {};
}

Status StreamWriter::PageRecord(std::span<const uint64_t> pfn_words, std::span<const std::byte* const> pages) {
  std::vector<uint8_t> hdr;
  hdr.reserve(16 + pfn_words.size() * 8);
  uint64_t length = 8 + pfn_words.size() * 8 + pages.size() * uint64_t{kXenPageSize};
  PutLe32(hdr, static_cast<uint32_t>(LibxcRec::kPageData));
  PutLe32(hdr, static_cast<uint32_t>(length));
  PutLe32(hdr, static_cast<uint32_t>(pfn_words.size()));
  PutLe32(hdr, 0);
  for (uint64_t w : pfn_words) PutLe64(hdr, w);
  std::vector<iovec> iov;
  iov.reserve(1 + pages.size());
  iov.push_back({hdr.data(), hdr.size()});
  for (const std::byte* p : pages) iov.push_back({const_cast<std::byte*>(p), kXenPageSize});
  ++stats_.records;
  ++stats_.page_records;
  dirty_since_checkpoint_ = true;
  return Put(iov);
}

Status StreamWriter::AddOptionalRecord(uint32_t type, std::span<const uint8_t> body) {
  XM_TRY(Check(Phase::kBody, "AddOptionalRecord()"));
  if (!(type & 0x80000000u))
    return Error(Code::kInternal, "xen stream: record type " + std::to_string(type) + " is not optional (bit 31)");
  return Record(type, body);
}

Status StreamWriter::AddPages(std::span<const uint64_t> pfns, std::span<const std::byte* const> pages) {
  XM_TRY(Check(Phase::kBody, "AddPages()"));
  if (pfns.size() != pages.size())
    return Error(Code::kInternal, "xen stream: " + std::to_string(pfns.size()) + " pfns for " +
                                      std::to_string(pages.size()) + " pages");
  std::vector<uint64_t> words;
  for (size_t first = 0; first < pfns.size(); first += kMaxPagesPerRecord) {
    size_t n = std::min<size_t>(kMaxPagesPerRecord, pfns.size() - first);
    words.clear();
    for (size_t i = first; i < first + n; ++i) {
      if (pfns[i] > kPfnMask)
        return Error(Code::kInvalidArgument, "xen stream: pfn " + std::to_string(pfns[i]) + " does not fit in 52 bits");
      words.push_back(pfns[i]);  // type NOTAB (0): HVM/PVH guests have no typed pages
    }
    XM_TRY_CTX(PageRecord(words, pages.subspan(first, n)), "PAGE_DATA for pfn " + std::to_string(pfns[first]));
    stats_.pages += n;
  }
  return {};
}

Status StreamWriter::AddInvalidPfns(std::span<const uint64_t> pfns) {
  XM_TRY(Check(Phase::kBody, "AddInvalidPfns()"));
  std::vector<uint64_t> words;
  for (size_t first = 0; first < pfns.size(); first += kMaxPagesPerRecord) {
    size_t n = std::min<size_t>(kMaxPagesPerRecord, pfns.size() - first);
    words.clear();
    for (size_t i = first; i < first + n; ++i) {
      if (pfns[i] > kPfnMask)
        return Error(Code::kInvalidArgument, "xen stream: pfn " + std::to_string(pfns[i]) + " does not fit in 52 bits");
      words.push_back(pfns[i] | static_cast<uint64_t>(PfnType::kXtab) << kPfnTypeShift);
    }
    XM_TRY_CTX(PageRecord(words, {}), "PAGE_DATA (invalid pfns) for pfn " + std::to_string(pfns[first]));
    stats_.invalid_pfns += n;
  }
  return {};
}

Status StreamWriter::Tail(const XenGuestState& st) {
  if (st.hvm_context.empty())
    return Error(Code::kInvalidArgument, "xen stream: an HVM guest's stream needs an HVM context");
  if (st.tsc) {
    std::vector<uint8_t> b;
    PutLe32(b, st.tsc->mode);
    PutLe32(b, st.tsc->khz);
    PutLe64(b, st.tsc->nsec);
    PutLe32(b, st.tsc->incarnation);
    PutLe32(b, 0);
    XM_TRY_CTX(Record(static_cast<uint32_t>(LibxcRec::kX86TscInfo), b), "X86_TSC_INFO");
  }
  // The spec orders HVM_PARAMS before HVM_CONTEXT: some params change what
  // state the context may hold. Empty records are elided, as Xen does.
  if (!st.params.empty()) {
    std::vector<uint8_t> b;
    PutLe32(b, static_cast<uint32_t>(st.params.size()));
    PutLe32(b, 0);
    for (const auto& p : st.params) {
      PutLe64(b, p.index);
      PutLe64(b, p.value);
    }
    XM_TRY_CTX(Record(static_cast<uint32_t>(LibxcRec::kHvmParams), b), "HVM_PARAMS");
  }
  XM_TRY_CTX(Record(static_cast<uint32_t>(LibxcRec::kHvmContext), st.hvm_context), "HVM_CONTEXT");
  return {};
}

Status StreamWriter::EmulatorRecords(const XenGuestState& st) {
  auto put = [&](LibxlRec type, const EmulatorRecord& r) -> Status {
    std::vector<uint8_t> b;
    PutLe32(b, r.emulator_id);
    PutLe32(b, r.index);
    PutBytes(b, r.data);
    return Record(static_cast<uint32_t>(type), b);
  };
  for (const auto& r : st.emulator_xenstore)
    XM_TRY_CTX(put(LibxlRec::kEmulatorXenstoreData, r), "EMULATOR_XENSTORE_DATA");
  for (const auto& r : st.emulator_context) XM_TRY_CTX(put(LibxlRec::kEmulatorContext, r), "EMULATOR_CONTEXT");
  return {};
}

Status StreamWriter::Checkpoint(const XenGuestState& st) {
  XM_TRY(Check(Phase::kBody, "Checkpoint()"));
  if (!opts_.checkpointed) return Error(Code::kInternal, "xen stream: Checkpoint() on a plain (live) stream");
  XM_TRY(Tail(st));
  XM_TRY_CTX(Record(static_cast<uint32_t>(LibxcRec::kCheckpoint), {}), "CHECKPOINT");
  if (opts_.framing != Framing::kLibxc) {
    // libxc hands the stream back to libxl at CHECKPOINT; libxl's records for
    // this checkpoint follow, closed by CHECKPOINT_END, then libxc resumes.
    XM_TRY(EmulatorRecords(st));
    XM_TRY_CTX(Record(static_cast<uint32_t>(LibxlRec::kCheckpointEnd), {}), "CHECKPOINT_END");
  }
  ++stats_.checkpoints;
  dirty_since_checkpoint_ = false;
  return {};
}

Status StreamWriter::Finish(const XenGuestState& st) {
  XM_TRY(Check(Phase::kBody, "Finish()"));
  if (opts_.checkpointed) return Error(Code::kInternal, "xen stream: Finish() on a checkpointed stream");
  XM_TRY(Tail(st));
  XM_TRY_CTX(Record(static_cast<uint32_t>(LibxcRec::kEnd), {}), "libxc END");
  if (opts_.framing != Framing::kLibxc) {
    XM_TRY(EmulatorRecords(st));
    XM_TRY_CTX(Record(static_cast<uint32_t>(LibxlRec::kEnd), {}), "libxl END");
  }
  phase_ = Phase::kDone;
  return {};
}

Status StreamWriter::FinishCheckpointed() {
  XM_TRY(Check(Phase::kBody, "FinishCheckpointed()"));
  if (!opts_.checkpointed) return Error(Code::kInternal, "xen stream: FinishCheckpointed() on a plain stream");
  // A Remus receiver buffers everything after the last CHECKPOINT and drops it at END.
  if (dirty_since_checkpoint_ || stats_.checkpoints == 0)
    return Error(Code::kInternal, "xen stream: pages written after the last checkpoint would be dropped");
  XM_TRY_CTX(Record(static_cast<uint32_t>(LibxcRec::kEnd), {}), "libxc END");
  if (opts_.framing != Framing::kLibxc) XM_TRY_CTX(Record(static_cast<uint32_t>(LibxlRec::kEnd), {}), "libxl END");
  phase_ = Phase::kDone;
  return {};
}

}  // namespace xm::xen
