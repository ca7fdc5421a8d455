// Xen's own featuresets (XEN_SYSCTL_get_cpu_featureset through libxenguest):
// raw, host, and the PV/HVM default and max sets XAPI levels with.
//
// Built only when libxen's development files are found (pkg-config
// xencontrol/xenguest); querying needs a Xen dom0 with privcmd, which the
// development machine does not have, so there the calls fail cleanly.
#pragma once

#include "base/guest.h"
#include "base/status.h"
#include "cpumask/featureset.h"

namespace xm::cpumask {

// Same numbering as XEN_SYSCTL_cpu_featureset_*.
enum class XenFeaturesetKind { kRaw = 0, kHost = 1, kPv = 2, kHvm = 3, kPvMax = 4, kHvmMax = 5 };

bool XenSupportBuilt();
// The featureset Xen reports; the vendor comes from CPUID in dom0 (Xen passes it
// through). kUnsupported without libxen, kIo when not running on Xen.
Result<CpuPolicy> XenFeatureset(XenFeaturesetKind kind);
// libxenguest's compiled-in mask of the features it knows (XC_FEATUREMASK_KNOWN).
// Needs no hypervisor, so it cross-checks the generated table against the
// installed Xen libraries.
Result<FeatureWords> XenKnownFeatureMask();

}  // namespace xm::cpumask
