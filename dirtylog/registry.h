// The backend registry: every hypervisor backend xmotion knows, as one table
// of name -> capabilities + factories (dirtylog/registry.cc). Nothing else in
// xmotion chooses a backend by name: the CLI, the receiver and the demo all
// look it up here, and list the names from the table.
//
// Adding a backend: a folder dirtylog/<name>/ that defines its BackendInfo
// (see sim/sim_info.cc) and one line in XM_BACKENDS in registry.cc.
//
// The table is constant after static initialization: safe to read from any thread.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dirtylog/backend.h"

namespace xm {

// What the CLI gathered for either side; each backend reads the fields it knows.
struct BackendOptions {
  std::string backend = "sim";  // a name from the registry
  uint64_t memory_bytes = 256ull << 20;
  std::string workload;         // WorkloadSpec text (backends that start their own guest)
  // Destination guest memory from the kernel's hugetlb pool (Mapping::HugeTlb;
  // backends that own guest memory: sim, kvm). Opt-in: never a silent fallback.
  bool hugepages = false;
  uint32_t vcpus = 1;           // kvm
  std::string domain;           // xen: name or id
  // Destination: the source's CPU policy from the handshake (a Xen stream
  // carries it before any page), and where to also write the guest as Xen's
  // libxl stream (any backend; dirtylog/xen/stream/tee.h).
  std::optional<CpuPolicy> incoming_policy;
  std::string xen_stream_out;
  // Xen destination (dirtylog/xen/README.md): libxl domain config (JSON, as
  // `xl`/libxl write it) to restore with, a new name, leave the domain paused,
  // which toolstack builds it.
  std::string xen_config;
  std::string xen_name;
  bool xen_keep_paused = false;
  std::string xen_restore_via = "libxl";  // "libxl" (in process) or "xl" (`xl restore -p`)
  // Or restore into a domain the control plane created (xenopsd's, via
  // emu-manager -domid/-store_port/-console_port): libxc's restore only, no
  // config, no devices; the ring frames it found go to `xen_rings` for the
  // control plane to introduce (emu-manager's result:xenguest STORE CONSOLE).
  uint32_t xen_domid = 0;
  uint32_t xen_store_port = 0, xen_console_port = 0;
  struct XenRings {
    uint64_t store_mfn = 0, console_mfn = 0;
  };
  std::shared_ptr<XenRings> xen_rings;
};

struct BackendCaps {
  bool built = true;            // compiled into this binary (xen needs libxen-dev)
  bool starts_guest = false;    // the source starts its own guest (--memory, --workload); else opens one (--domain)
  bool direct_memory = false;   // guest memory is one mapping in this process (no per-batch foreign map)
  bool guest_selfcheck = false; // the guest checks its own memory after resume (demo waits for one check)
  int demo_priority = 0;        // `xmotion demo` picks the usable backend with the highest; 0 = never
};

struct BackendInfo {
  std::string_view name;
  std::string_view summary;  // one line for `xmotion backends` and --help
  BackendCaps caps;
  // Whether the backend can run here right now (e.g. /dev/kvm opens); why not otherwise.
  Status (*usable)();
  // What this host can offer a guest of this backend (hypervisor's view where it has one).
  Result<CpuPolicy> (*host_policy)();
  // Opens (or starts) the guest to migrate away.
  Result<std::unique_ptr<Backend>> (*open_source)(const BackendOptions& opts);
  // Creates an empty destination guest of `shape`.
  Result<std::unique_ptr<Backend>> (*create_destination)(const BackendOptions& opts, const GuestShape& shape);
  // Guest memory this host can take now, where guests do not live in this
  // process (a hypervisor's free memory); null: this host's RAM.
  Result<uint64_t> (*guest_capacity)() = nullptr;
};

// Every registered backend, built or not, in the table's order.
std::span<const BackendInfo* const> Backends();
// The backend called `name`; kUnsupported naming the known ones otherwise.
Result<const BackendInfo*> FindBackend(std::string_view name);
// "sim, kvm or xen": the built backends' names for messages and --help.
std::string BackendNamesText();

// The names of the backends built into this binary.
std::vector<std::string> AvailableBackends();
// Whether `name` can run on this host right now; why not otherwise.
Status BackendUsable(const std::string& name);
// Opens (or starts) the guest to migrate away.
Result<std::unique_ptr<Backend>> OpenSource(const BackendOptions& opts);
// Creates an empty destination guest of `shape` sent by a source running
// `source_backend`, wrapped in the Xen stream tee when opts.xen_stream_out is set.
Result<std::unique_ptr<Backend>> CreateDestination(const BackendOptions& opts, const GuestShape& shape,
                                                   std::string_view source_backend);

}  // namespace xm
