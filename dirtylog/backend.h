// Backend: the one interface between the migration engine and a hypervisor.
//
// A migration picks one backend per side (like Xen's save_ops/restore_ops): the
// source opens an existing guest, the destination creates an empty one of the same
// shape and fills it. The engine never talks to a hypervisor any other way.
//
// Threading: a Backend is driven by one engine thread, except MapPages(), which
// page-pipeline workers may call concurrently for disjoint pfns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/guest.h"
#include "base/status.h"
#include "dirtylog/bitmap.h"

namespace xm {

// Guest pages made addressable for one batch. Pointers stay valid while this
// object lives; `keepalive` owns whatever mapping backs them (e.g. a foreign map).
struct MappedPages {
  std::vector<std::byte*> pages;
  std::shared_ptr<void> keepalive;
};

// What the guest itself says about its health, where the backend can tell
// (the sim workload's counter, the KVM payload's self-check). `available` is
// false for guests that report nothing.
struct GuestProgress {
  bool available = false;
  bool selfcheck = false;      // the guest checks its own memory (checks_* mean something)
  uint64_t counter = 0;        // monotonically increasing while the guest runs
  uint64_t checks_passed = 0;  // guest's own memory checks that ran here and passed
  uint64_t checks_failed = 0;
  std::string describe;        // the guest's own report in one line, when it has one
};

enum class Access { kRead, kWrite };


class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string_view name() const = 0;
  virtual const GuestShape& shape() const = 0;
  // What names this guest on this host for as long as it lives (Xen: the domid),
  // so two migrations of it can be told apart; empty for a guest that lives in
  // this process (nothing else can migrate it).
  virtual std::string guest_id() const { return {}; }

  // Memory. Pfns must lie in shape().ranges.
  virtual Result<MappedPages> MapPages(std::span<const uint64_t> pfns, Access access) = 0;
  // Base of guest memory when it is one linear mapping in this process (sim, kvm),
  // else nullptr. Lets the pipeline skip per-batch mapping.
  virtual std::byte* DirectMemory() { return nullptr; }
  // True when a new destination guest's memory reads as zero until written
  // (anonymous memory): the receiver then skips writing zero pages it never had.
  virtual bool ZeroInitialized() const { return false; }
  // ORs into `out` every page that may read as something other than zero: the
  // pages anything wrote since the guest's memory was allocated, as far as the
  // backend knows. The source's first round sends the others as ZERO pages from
  // this bitmap, without reading them (an idle guest costs a bitmap scan, not a
  // fault and a copy per page). Pages written later are in the dirty log.
  // The default knows nothing and names every page.
  virtual void PagesMaybeWritten(DirtyBitmap& out) { out.SetAll(); }

  // Dirty log. FetchDirty ORs the pages written since the last fetch into `out`
  // and clears the log; a page written during the fetch is reported now or next time.
  virtual Status EnableDirtyLog() = 0;
  virtual Status FetchDirty(DirtyBitmap& out) = 0;
  virtual Status DisableDirtyLog() = 0;

  // Run control. Throttle takes the fraction of time the guest may run (1.0 = full).
  virtual Status Pause() = 0;
  virtual Status Resume() = 0;
  virtual Status SetThrottle(double run_fraction) = 0;
  virtual bool Running() const = 0;
  // The hypervisor's view of the guest (queries it where there is one). The
  // default serves backends whose guest lives in this process.
  virtual GuestState State() const { return Running() ? GuestState::kRunning : GuestState::kPaused; }

  // vCPU state as an opaque, versioned blob. Save only while paused; load before resume.
  virtual Result<std::vector<uint8_t>> SaveVcpuState() = 0;
  virtual Status LoadVcpuState(std::span<const uint8_t> blob) = 0;

  // CPU policy. Apply (destination, before the first resume) returns the policy the
  // hypervisor actually installed, read back, so callers can see forced bits.
  virtual Result<CpuPolicy> GetCpuPolicy() = 0;
  virtual Result<CpuPolicy> ApplyCpuPolicy(const CpuPolicy& policy) = 0;

  // Destination hooks: a round's pages have all been written; the migration
  // failed and the half-built guest must go. Source hook: the destination owns
  // the guest now, stop it here for good (its dirty log, possibly still on,
  // goes with it: the engine does not turn it off first).
  virtual Status OnRoundEnd(uint32_t /*round*/) { return {}; }
  virtual void Discard() {}
  virtual Status Release() { return {}; }

  virtual GuestProgress Progress() { return {}; }
};

}  // namespace xm
