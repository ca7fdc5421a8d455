// After the destination resumed the guest: does it really run here? Reads the
// guest's own progress (a counter that moves, a memory self-check that passes)
// and writes the verdict into the report's `guest` and `guest_selfcheck`.
#pragma once

#include "dirtylog/backend.h"
#include "migrate/common/clock.h"
#include "migrate/common/report.h"

namespace xm {

// `at_resume` is the guest's progress read just before its first resume here,
// `resumed_at` when that was. For a self-checking guest, waits up to
// `selfcheck_wait_ms` for its first whole check. Does nothing for guests that
// report no progress.
void WatchResumedGuest(Backend& guest, const GuestProgress& at_resume, Clock::time_point resumed_at,
                       int selfcheck_wait_ms, MigrationReport& report);

}  // namespace xm
