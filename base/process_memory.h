// Process memory (and CPU time) as the kernel counts it, for the reports' overhead figures:
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
// Resident bytes of the mappings overlapping [addr, addr + len), as
// /proc/self/smaps counts them (the same accounting as VmRSS: the shared zero
// page a read of untouched memory maps is not counted; mincore would).
uint64_t ResidentBytesIn(const void* addr, size_t len);

// Restarts VmHWM from the current VmRSS (/proc/self/clear_refs "5"), so a
// peak before the migration (filling a guest, loading libraries) is not
// counted as the migration's. Returns false where the kernel cannot.
bool ResetPeakResident();
// Resident bytes now beyond what `guest` (a mapping the process holds the
// guest in, or null when the guest lives elsewhere, e.g. in a Xen domain) has
// resident: the baseline for OverheadSince.
uint64_t ResidentBeyond(const void* guest, size_t guest_len);
// Peak resident memory (since ResetPeakResident) beyond `baseline` (a ResidentBeyond) and beyond what
// `guest` has resident now: the migration's own memory.
uint64_t OverheadSince(uint64_t baseline, const void* guest, size_t guest_len);

// CPU time (user + system, every thread) this process has used so far, in
// milliseconds (getrusage). The reports take differences of it: what one end
// burned while the guest was down, on a host whose device model and
// toolstack need the same CPUs then.
double ProcessCpuMs();

}  // namespace xm
