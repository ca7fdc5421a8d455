#include "cpumask/xen_host.h"

#include "cpumask/host.h"

#ifdef XM_HAVE_XEN
#include <cerrno>
#include <memory>

extern "C" {
#include <xenctrl.h>
#include <xenguest.h>
}
#endif

namespace xm::cpumask {

#ifdef XM_HAVE_XEN

bool XenSupportBuilt() { return true; }

Result<CpuPolicy> XenFeatureset(XenFeaturesetKind kind) {
  std::unique_ptr<xc_interface, int (*)(xc_interface*)> xch(xc_interface_open(nullptr, nullptr, 0), xc_interface_close);
  if (!xch) return ErrnoError("xc_interface_open (is this a Xen dom0?)", errno);
  uint32_t nr = xc_get_cpu_featureset_size();
  FeatureWords words(nr, 0);
  if (xc_get_cpu_featureset(xch.get(), static_cast<uint32_t>(kind), &nr, words.data()) != 0)
    return ErrnoError("xc_get_cpu_featureset(" + std::to_string(static_cast<int>(kind)) + ")", errno);
  words.resize(nr);
  XM_ASSIGN_OR_RETURN(CpuPolicy host, HostCpuPolicy());
  CpuPolicy p;
  p.vendor = host.vendor;
  p.featureset = std::move(words);
  p.format = "none";
  return p;
}

Result<FeatureWords> XenKnownFeatureMask() {
  const uint32_t* mask = xc_get_static_cpu_featuremask(XC_FEATUREMASK_KNOWN);
  if (!mask) return Error(Code::kInternal, "xc_get_static_cpu_featuremask(KNOWN) returned nothing");
  return FeatureWords(mask, mask + xc_get_cpu_featureset_size());
}

#else

bool XenSupportBuilt() { return false; }

Result<CpuPolicy> XenFeatureset(XenFeaturesetKind) {
  return Error(Code::kUnsupported, "xmotion was built without libxen (pkg-config xencontrol xenguest)");
}

Result<FeatureWords> XenKnownFeatureMask() {
  return Error(Code::kUnsupported, "xmotion was built without libxen (pkg-config xencontrol xenguest)");
}

#endif

}  // namespace xm::cpumask
