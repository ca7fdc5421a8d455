#include "dirtylog/faulty_backend.h"

#include <string>

namespace xm {
namespace {

Status Injected(const char* call, uint64_t n) {
  return Error(Code::kIo, std::string("fault injected: ") + call + " call " + std::to_string(n) + " failed");
}

}  // namespace

FaultyBackend::FaultyBackend(std::unique_ptr<Backend> inner, BackendFaults faults)
    : ForwardingBackend(std::move(inner)), faults_(std::move(faults)) {}

Result<MappedPages> FaultyBackend::MapPages(std::span<const uint64_t> pfns, Access access) {
  uint64_t n = Hook("MapPages", maps_);
  if (n == faults_.fail_map_at) return Injected("MapPages", n);
  return inner_->MapPages(pfns, access);
}

Status FaultyBackend::FetchDirty(DirtyBitmap& out) {
  uint64_t n = Hook("FetchDirty", fetches_);
  if (n == faults_.fail_fetch_dirty_at) return Injected("FetchDirty", n);
  XM_TRY(inner_->FetchDirty(out));
  if (faults_.drop_dirty_pfn < out.size()) out.Clear(faults_.drop_dirty_pfn);
  if (faults_.always_dirty_pfn < out.size()) out.Set(faults_.always_dirty_pfn);
  return {};
}

Status FaultyBackend::Pause() {
  uint64_t n = Hook("Pause", pauses_);
  if (n == faults_.fail_pause_at) return Injected("Pause", n);
  return inner_->Pause();
}

Status FaultyBackend::Resume() {
  uint64_t n = Hook("Resume", resumes_);
  if (n == faults_.fail_resume_at) return Injected("Resume", n);
  return inner_->Resume();
}

}  // namespace xm
