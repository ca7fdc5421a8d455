#include "dirtylog/faulty_backend.h"

#include <string>

namespace xm {
namespace {

Status Injected(const char* call, uint64_t n) {
  return Error(Code::kIo, std::string("fault injected: ") + call + " call " + std::to_string(n) + " failed");
}

}  // namespace

FaultyBackend::FaultyBackend(std::unique_ptr<Backend> inner, BackendFaults faults)
    : inner_(std::move(inner)), faults_(faults) {}

Result<MappedPages> FaultyBackend::MapPages(std::span<const uint64_t> pfns, Access access) {
  uint64_t n = maps_.fetch_add(1) + 1;
  if (n == faults_.fail_map_at) return Injected("MapPages", n);
  return inner_->MapPages(pfns, access);
}

Status FaultyBackend::FetchDirty(DirtyBitmap& out) {
  uint64_t n = fetches_.fetch_add(1) + 1;
  if (n == faults_.fail_fetch_dirty_at) return Injected("FetchDirty", n);
  XM_TRY(inner_->FetchDirty(out));
  if (faults_.drop_dirty_pfn < out.size()) out.Clear(faults_.drop_dirty_pfn);
  return {};
}

Status FaultyBackend::Pause() {
  uint64_t n = pauses_.fetch_add(1) + 1;
  if (n == faults_.fail_pause_at) return Injected("Pause", n);
  return inner_->Pause();
}

Status FaultyBackend::Resume() {
  uint64_t n = resumes_.fetch_add(1) + 1;
  if (n == faults_.fail_resume_at) return Injected("Resume", n);
  return inner_->Resume();
}

}  // namespace xm
