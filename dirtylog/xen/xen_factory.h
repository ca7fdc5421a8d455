// The Xen backend's registry entry (kXenBackend, dirtylog/registry.h): whether
// it is built and usable here, how to open a Xen source and create a Xen
// destination; and the --xen-stream-out tee for any destination. Compiles with or without
// libxen-dev; without it the backend answers kUnsupported, saying why.
#pragma once

#include <memory>
#include <string_view>

#include "dirtylog/backend.h"
#include "dirtylog/registry.h"

namespace xm::xen {

// Built with Debian's libxen-dev (the hypervisor backends are compiled in).
bool BackendBuilt();
// A Xen hypervisor with this process as a privileged toolstack (dom0, root).
Status BackendUsable();

Result<std::unique_ptr<Backend>> OpenSource(const BackendOptions& opts);
Result<std::unique_ptr<Backend>> CreateDestination(const BackendOptions& opts, const GuestShape& shape);
// Xen's free memory: what a new domain can be given here.
Result<uint64_t> GuestCapacity();

// Wraps `dest` in the stream tee when opts.xen_stream_out is set; else returns it.
Result<std::unique_ptr<Backend>> MaybeTeeXenStream(std::unique_ptr<Backend> dest, const BackendOptions& opts,
                                                   std::string_view source_backend);

}  // namespace xm::xen
