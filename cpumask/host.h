// The running host's CPU policy, read with the CPUID instruction.
//
// This is the raw hardware view (what Xen calls the "raw"/"host" featureset
// when run on bare metal; inside a VM it is what that VM's hypervisor shows).
// The hypervisor-specific views are elsewhere: kvm_cpuid.h (what KVM can give a
// guest) and xen_host.h (Xen's host/PV/HVM featuresets).
#pragma once

#include <string>
#include <vector>

#include "base/guest.h"
#include "base/status.h"

namespace xm::cpumask {

struct HostDetection {
  CpuPolicy policy;                 // vendor + featureset, format "none"
  std::vector<std::string> notes;   // what could not be read (e.g. MSR words)
};

// CPUID leaves are read only up to the maxima the CPU reports (leaf 0,
// 0x80000000, 7:0.eax). MSR-sourced words (MSR_ARCH_CAPS) are read from
// /dev/cpu/0/msr when it exists (root + the msr module); otherwise they are 0
// and a note says so.
Result<HostDetection> DetectHostCpu();

// DetectHostCpu().policy.
Result<CpuPolicy> HostCpuPolicy();

}  // namespace xm::cpumask
