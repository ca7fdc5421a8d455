// Process memory as the kernel counts it, for the reports' overhead figures:
// what a migration costs the host beyond the guest itself. Read from
// /proc/self/status (VmRSS, VmHWM) and mincore(2); Linux only.
// Thread-safe (no state).
#pragma once

#include <cstddef>
#include <cstdint>

namespace xm {

// Resident bytes of this process now (VmRSS), 0 if unreadable.
uint64_t ResidentBytes();
// The process's peak resident bytes so far (VmHWM), 0 if unreadable.
uint64_t PeakResidentBytes();
// Resident bytes of [addr, addr + len) (page-aligned addr), by mincore(2).
uint64_t ResidentBytesIn(const void* addr, size_t len);

// Peak resident memory since `baseline` beyond what `guest` (a mapping the
// process holds the guest in, or null when the guest lives elsewhere, e.g. in
// a Xen domain) has resident now: the migration's own memory.
uint64_t OverheadSince(uint64_t baseline, const void* guest, size_t guest_len);

}  // namespace xm
