// XenStreamTee: a destination Backend decorator that also writes the guest it
// receives as Xen's own migration stream (xl/libxl/libxc framing) to a file,
// round by round, for any guest — sim and kvm included. `xmotion receive` and
// `xmotion demo` expose it as --xen-stream-out FILE, so anyone can check the
// result with Xen's verify-stream-v2.
//
// How: the tee hides the inner backend's DirectMemory() so every page the
// receiver writes goes through MapPages(kWrite), where its pfn is noted; at
// each OnRoundEnd() the noted pages are read back from the inner backend and
// appended as PAGE_DATA. The CPU policy (from the handshake) becomes the static
// X86_CPUID_POLICY/X86_MSR_POLICY records; the vCPU state becomes TSC_INFO,
// HVM_PARAMS and HVM_CONTEXT. A Xen source's vCPU blob carries the real
// records; for any other guest they are SYNTHETIC (a power-on HVM context
// labelled in its header, a policy built from the featureset) and the tee says
// so in its summary. The stream is completed when the CPU policy is applied
// (the last step before READY), so a failure to write it fails the migration
// before the source lets go; Discard() deletes the partial file.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "dirtylog/backend.h"
#include "dirtylog/xen/stream/writer.h"

namespace xm::xen {

struct TeeOptions {
  std::string path;                    // where the stream goes (created/truncated)
  Framing framing = Framing::kLibxl;
  std::optional<CpuPolicy> policy;     // the source's policy as sent in the handshake
  std::string source_backend;          // "sim", "kvm", "xen": decides real vs synthetic state
};

// Wraps `inner` (a freshly created destination guest).
Result<std::unique_ptr<Backend>> WrapWithXenStreamTee(std::unique_ptr<Backend> inner, TeeOptions opts);

// One line describing a tee's stream (path, framing, records, pages, rounds,
// synthetic or not); empty if `b` is not a tee.
std::string XenStreamTeeSummary(const Backend& b);

}  // namespace xm::xen
