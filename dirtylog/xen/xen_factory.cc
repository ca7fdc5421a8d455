#include "dirtylog/xen/xen_factory.h"

#include <fstream>
#include <sstream>

#include "cpumask/xen_host.h"
#include "dirtylog/xen/stream/tee.h"

#if XM_HAVE_XEN
#include "dirtylog/xen/xen_c_headers.h"
#include "dirtylog/xen/xen_destination.h"
#include "dirtylog/xen/xen_source.h"
#endif

namespace xm::xen {

namespace {
#if XM_HAVE_XEN
constexpr bool kBuilt = true;
#else
constexpr bool kBuilt = false;
#endif
}  // namespace

bool BackendBuilt() { return kBuilt; }

Status BackendUsable() {
#if !XM_HAVE_XEN
  return Error(Code::kUnsupported,
               "backend 'xen' is not built into this xmotion (libxen-dev was not found at build time)");
#else
  // xenfs shows the hypervisor's view of this domain; "control_d" means dom0.
  std::ifstream caps("/proc/xen/capabilities");
  if (!caps)
    return Error(Code::kUnsupported,
                 "backend 'xen': no Xen hypervisor here (/proc/xen/capabilities is missing: not a Xen dom0, or "
                 "xenfs is not mounted)");
  std::stringstream ss;
  ss << caps.rdbuf();
  if (ss.str().find("control_d") == std::string::npos)
    return Error(Code::kUnsupported, "backend 'xen': this is a Xen guest, not dom0 (no control_d capability)");
  std::ifstream privcmd("/dev/xen/privcmd");
  if (!privcmd) return Error(Code::kUnsupported, "backend 'xen': /dev/xen/privcmd cannot be opened (run as root)");
  return {};
#endif
}

Result<uint64_t> GuestCapacity() {
  XM_TRY(BackendUsable());
#if XM_HAVE_XEN
  // A guest's memory belongs to its domain, not to dom0: what Xen has free
  // (pages being scrubbed included: they are free within seconds).
  xc_interface* xch = xc_interface_open(nullptr, nullptr, 0);
  if (!xch) return ErrnoError("xen: xc_interface_open", errno);
  xc_physinfo_t info{};
  const int rc = xc_physinfo(xch, &info);
  const int err = errno;
  xc_interface_close(xch);
  if (rc != 0) return ErrnoError("xen: xc_physinfo", err);
  return (static_cast<uint64_t>(info.free_pages) + info.scrub_pages) * XC_PAGE_SIZE;
#else
  return Error(Code::kInternal, "unreachable");
#endif
}

Result<std::unique_ptr<Backend>> OpenSource(const BackendOptions& opts) {
  XM_TRY(BackendUsable());
#if XM_HAVE_XEN
  if (opts.domain.empty()) return Error(Code::kInvalidArgument, "backend 'xen' needs the domain to migrate (--domain NAME|ID)");
  auto b = XenSource::Open(opts.domain);
  if (!b.ok()) return b.status();
  return std::unique_ptr<Backend>(std::move(b).value());
#else
  (void)opts;
  return Error(Code::kInternal, "unreachable");
#endif
}

Result<std::unique_ptr<Backend>> CreateDestination(const BackendOptions& opts, const GuestShape& shape) {
  XM_TRY(BackendUsable());
#if XM_HAVE_XEN
  XenDestinationOptions o;
  o.config_path = opts.xen_config;
  o.name = opts.xen_name;
  o.keep_paused = opts.xen_keep_paused;
  o.restore_via = opts.xen_restore_via;
  o.policy = opts.incoming_policy;
  o.into_domid = opts.xen_domid;
  o.store_port = opts.xen_store_port;
  o.console_port = opts.xen_console_port;
  o.rings = opts.xen_rings;
  auto b = XenDestination::Create(shape, std::move(o));
  if (!b.ok()) return b.status();
  return std::unique_ptr<Backend>(std::move(b).value());
#else
  (void)opts;
  (void)shape;
  return Error(Code::kInternal, "unreachable");
#endif
}

Result<std::unique_ptr<Backend>> MaybeTeeXenStream(std::unique_ptr<Backend> dest, const BackendOptions& opts,
                                                   std::string_view source_backend) {
  if (opts.xen_stream_out.empty()) return dest;
  TeeOptions t;
  t.path = opts.xen_stream_out;
  t.policy = opts.incoming_policy;
  t.source_backend = std::string(source_backend);
  return WrapWithXenStreamTee(std::move(dest), std::move(t));
}

}  // namespace xm::xen

namespace xm {

extern const BackendInfo kXenBackend;
const BackendInfo kXenBackend = {
    .name = "xen",
    .summary = "an existing Xen domain (dom0 toolstack: libxenctrl, libxenguest, libxl)",
    .caps = {.built = xen::kBuilt, .starts_guest = false, .direct_memory = false, .guest_selfcheck = false,
             .demo_priority = 0},
    .usable = xen::BackendUsable,
    .host_policy = [] { return cpumask::XenFeatureset(cpumask::XenFeaturesetKind::kHvmMax); },
    .open_source = xen::OpenSource,
    .create_destination = xen::CreateDestination,
    .guest_capacity = xen::GuestCapacity,
};

}  // namespace xm
