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

Status FaultyBackend::Check(const char* call, std::atomic<uint64_t>& counter, uint64_t at) {
  const uint64_t n = Hook(call, counter);
  if (n == at || (faults_.fail_if && faults_.fail_if(call, n))) return Injected(call, n);
  return {};
}

Result<MappedPages> FaultyBackend::MapPages(std::span<const uint64_t> pfns, Access access) {
  XM_TRY(Check("MapPages", maps_, faults_.fail_map_at));
  return inner_->MapPages(pfns, access);
}

Result<std::vector<uint8_t>> FaultyBackend::SaveVcpuState() {
  XM_TRY(Check("SaveVcpuState", saves_, 0));
  return inner_->SaveVcpuState();
}

Status FaultyBackend::LoadVcpuState(std::span<const uint8_t> blob) {
  XM_TRY(Check("LoadVcpuState", loads_, 0));
  return inner_->LoadVcpuState(blob);
}

Status FaultyBackend::FetchDirty(DirtyBitmap& out) {
  XM_TRY(Check("FetchDirty", fetches_, faults_.fail_fetch_dirty_at));
  XM_TRY(inner_->FetchDirty(out));
  if (faults_.drop_dirty_pfn < out.size()) out.Clear(faults_.drop_dirty_pfn);
  if (faults_.always_dirty_pfn < out.size()) out.Set(faults_.always_dirty_pfn);
  return {};
}

Status FaultyBackend::Pause() {
  XM_TRY(Check("Pause", pauses_, faults_.fail_pause_at));
  if (faults_.drop_dirty_pfn < inner_->shape().page_count) {
    const uint64_t pfn = faults_.drop_dirty_pfn;
    XM_ASSIGN_OR_RETURN(MappedPages m, inner_->MapPages(std::span(&pfn, 1), Access::kWrite));
    m.pages[0][100] ^= std::byte{0x5a};
  }
  return inner_->Pause();
}

Status FaultyBackend::Resume() {
  XM_TRY(Check("Resume", resumes_, faults_.fail_resume_at));
  return inner_->Resume();
}

}  // namespace xm
