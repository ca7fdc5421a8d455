// Vocabulary of a guest as every layer sees it: page frames, the guest's
// shape, and its CPU policy as an opaque blob. A leaf header: it includes only
// the standard library, so transport/, cpumask/ and dirtylog/ can all speak of
// guests without depending on each other.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace xm {

// A guest page frame number: the guest-physical address divided by the page size.
using Pfn = uint64_t;

// The only page size the wire protocol knows (PROTOCOL.md §4).
constexpr uint32_t kPageSize = 4096;

struct PfnRange {
  Pfn first = 0;
  uint64_t count = 0;
  bool operator==(const PfnRange&) const = default;
};

// What a guest looks like from outside: its page frames and vCPUs.
struct GuestShape {
  uint32_t page_size = kPageSize;
  uint64_t page_count = 0;        // pfns are 0 .. page_count-1
  std::vector<PfnRange> ranges;   // populated pfns; the engine sends only these
  uint32_t vcpus = 1;

  // Populated pages, and their bytes (not the address space's).
  uint64_t populated_pages() const;
  uint64_t memory_bytes() const { return populated_pages() * page_size; }
  bool operator==(const GuestShape&) const = default;
};

// The guest's CPU policy as the hypervisor enforces it. `featureset` is what
// compatibility checks read; `blob` is what the destination's hypervisor
// installs, in a format only the backend that wrote it understands.
struct CpuPolicy {
  std::string vendor;               // CPUID vendor string, e.g. "GenuineIntel"
  std::vector<uint32_t> featureset; // x86 feature words in Xen's cpufeatureset order
  std::string format;               // how `blob` is encoded: "none", "kvm-cpuid2-v1", "xen-policy-v1"
  std::vector<uint8_t> blob;        // hypervisor-specific full policy (leaves, MSRs)
};

// The guest as its hypervisor sees it right now. Reports take `source_guest`
// from here after a failure, so an operator reads the hypervisor's truth (a
// crashed domain is never called "running").
enum class GuestState {
  kRunning,
  kPaused,     // paused by someone (the engine, the toolstack, an operator)
  kSuspended,  // cooperatively suspended (Xen SHUTDOWN_suspend), resumable
  kCrashed,    // the guest kernel or the hypervisor killed it; memory may be kept
  kShutdown,   // powered off / rebooting / halted by the guest itself
  kGone,       // no longer exists (destroyed, dying, never found)
};
std::string_view GuestStateName(GuestState s);
// True where a migration can start (or resume the guest after a failure).
inline bool Migratable(GuestState s) { return s == GuestState::kRunning || s == GuestState::kPaused; }

}  // namespace xm
