#include "dirtylog/xen/stream/feeder.h"

#include <vector>

namespace xm::xen {

StreamFeeder::StreamFeeder(uint64_t page_count, ByteSink& sink, StreamOptions opts)
    : sink_(sink), writer_(sink, std::move(opts)), marked_(page_count), drained_(page_count) {}

Result<std::unique_ptr<StreamFeeder>> StreamFeeder::Start(uint64_t page_count, ByteSink& sink, StreamOptions opts,
                                                          const XenCpuPolicy* policy) {
  std::unique_ptr<StreamFeeder> f(new StreamFeeder(page_count, sink, std::move(opts)));
  XM_TRY(f->writer_.Begin(policy));
  return f;
}

void StreamFeeder::Mark(std::span<const uint64_t> pfns) {
  for (uint64_t pfn : pfns)
    if (pfn < marked_.size()) marked_.Set(pfn);
}

Status StreamFeeder::FlushRound(uint32_t round, const PageReader& read) {
  RoundStreamStats rs;
  rs.round = round;
  uint64_t before = sink_.written();
  drained_.ClearAll();
  marked_.FetchAndClearInto(drained_);
  std::vector<uint64_t> pfns;
  pfns.reserve(kMaxPagesPerRecord);
  Status st;
  auto flush = [&]() -> Status {
    if (pfns.empty()) return {};
    XM_ASSIGN_OR_RETURN(MappedPages mapped, read(pfns));
    if (mapped.pages.size() != pfns.size())
      return Error(Code::kInternal, "mapped " + std::to_string(mapped.pages.size()) + " of " +
                                        std::to_string(pfns.size()) + " pages");
    std::vector<const std::byte*> pages(mapped.pages.begin(), mapped.pages.end());
    XM_TRY(writer_.AddPages(pfns, pages));
    rs.pages += pfns.size();
    pfns.clear();
    return {};
  };
  drained_.ForEach([&](uint64_t pfn) {
    if (!st.ok()) return;
    pfns.push_back(pfn);
    if (pfns.size() == kMaxPagesPerRecord) st = flush();
  });
  if (st.ok()) st = flush();
  if (!st.ok()) return std::move(st).With("xen stream: round " + std::to_string(round));
  rs.bytes = sink_.written() - before;
  rounds_.push_back(rs);
  return {};
}

Status StreamFeeder::Finish(const XenGuestState& state) { return writer_.Finish(state).With("xen stream"); }

}  // namespace xm::xen
