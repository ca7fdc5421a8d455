// `xmotion cpu …`: CPU featuresets, pool levelling and compatibility checks.
// Exit codes: 0 compatible, 1 not compatible (or detection failed), 2 bad input.
// Policy syntax and the rules: cpumask/README.md.
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/log.h"
#include "cpumask/featureset.h"
#include "cpumask/host.h"
#include "cpumask/kvm_cpuid.h"
#include "cpumask/levelling.h"
#include "cpumask/policy_text.h"
#include "cpumask/vendor.h"
#include "cpumask/xen_host.h"
#include "migrate/cli/commands.h"

namespace xm::cli {
namespace {

namespace cm = xm::cpumask;
using nlohmann::json;

constexpr int kCompatible = 0;
constexpr int kNotCompatible = kExitIncompatible;  // the same code send uses for it
constexpr int kBadInput = kExitUsage;  // as for every xmotion command

struct NamedPolicy {
  std::string name;
  CpuPolicy policy;
};

bool IsRegularFile(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string Stem(std::string path) {
  if (auto slash = path.rfind('/'); slash != std::string::npos) path = path.substr(slash + 1);
  if (auto dot = path.rfind('.'); dot != std::string::npos && dot > 0) path = path.substr(0, dot);
  return path;
}

// "NAME=SPEC" labels a policy; SPEC is anything ParsePolicy takes. Without a
// label a file's stem names it, else `fallback` ("host 2").
Result<NamedPolicy> LoadArg(const std::string& arg, const std::string& fallback) {
  NamedPolicy out;
  std::string spec = arg;
  size_t eq = arg.find('=');
  if (eq != std::string::npos && eq > 0 && arg.front() != '{' &&
      arg.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == eq) {
    out.name = arg.substr(0, eq);
    spec = arg.substr(eq + 1);
  }
  if (out.name.empty()) {
    if (!spec.empty() && spec.front() == '@') out.name = Stem(spec.substr(1));
    else if (IsRegularFile(spec)) out.name = Stem(spec);
    else out.name = fallback;
  }
  auto p = cm::ParsePolicy(spec);
  if (!p.ok()) return Status(p.status()).With(out.name);
  out.policy = std::move(p).value();
  return out;
}

// A comma starts a new member when what follows it stands on its own (a file,
// a label, JSON, a vendor prefix or hex words); otherwise it continues a
// feature-name list, so "intel:avx2,sse2,amd:sse2" is two members.
bool StartsMember(const std::string& piece) {
  if (piece.empty()) return false;
  if (piece.front() == '@' || piece.front() == '{') return true;
  if (piece.find_first_of(":=") != std::string::npos) return true;
  if (piece.size() >= 9 && piece[8] == '-' &&
      piece.substr(0, 8).find_first_not_of("0123456789abcdefABCDEF") == std::string::npos)
    return true;
  return piece.find_first_of("/.") != std::string::npos && IsRegularFile(piece);
}

std::vector<std::string> SplitMembers(const std::vector<std::string>& values) {
  std::vector<std::string> members;
  for (const std::string& v : values) {
    // Split at commas outside JSON braces and strings.
    std::vector<std::string> pieces(1);
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < v.size(); ++i) {
      char c = v[i];
      if (in_str) {
        if (c == '\\' && i + 1 < v.size()) pieces.back() += v[i++];
        else if (c == '"') in_str = false;
      } else if (c == '"') {
        in_str = true;
      } else if (c == '{') {
        ++depth;
      } else if (c == '}') {
        --depth;
      } else if (c == ',' && depth == 0) {
        pieces.emplace_back();
        continue;
      }
      pieces.back() += c;
    }
    bool first = true;
    for (std::string& piece : pieces) {
      if (first || StartsMember(piece)) members.push_back(std::move(piece));
      else members.back() += "," + piece;
      first = false;
    }
  }
  return members;
}

Result<std::vector<NamedPolicy>> LoadArgs(const std::vector<std::string>& args, const std::string& what) {
  std::vector<NamedPolicy> out;
  for (size_t i = 0; i < args.size(); ++i) {
    XM_ASSIGN_OR_RETURN(NamedPolicy p, LoadArg(args[i], what + " " + std::to_string(i + 1)));
    out.push_back(std::move(p));
  }
  return out;
}

int BadInput(const char* cmd, const Status& st) {
  spdlog::error("xmotion cpu {}: {}", cmd, st.message());
  return kBadInput;
}

void PrintJson(const json& j) { std::printf("%s\n", j.dump(2).c_str()); }

// Names wrapped at 100 columns: the first line starts at column `first_col`,
// later ones are indented by `indent`.
std::string Wrap(const std::vector<uint32_t>& bits, size_t first_col, size_t indent) {
  constexpr size_t kWidth = 100;
  std::string out;
  size_t col = first_col;
  bool line_empty = true;
  for (const std::string& name : cm::Names(bits)) {
    if (!line_empty && col + name.size() + 2 > kWidth) {
      out += ",\n" + std::string(indent, ' ');
      col = indent;
      line_empty = true;
    }
    if (!line_empty) {
      out += ", ";
      col += 2;
    }
    out += name;
    col += name.size();
    line_empty = false;
  }
  return out;
}

std::string VendorLabel(const std::string& v) { return v.empty() ? "unspecified vendor" : v; }

size_t Count(const CpuPolicy& p) { return cm::SetBits(p.featureset).size(); }

// ---- cpu host ----

struct HostArgs {
  std::string from = "cpuid";
  std::string format;
  bool json = false;
};

int RunHost(const HostArgs& a) {
  static const std::pair<const char*, cm::XenFeaturesetKind> kXen[] = {
      {"xen-raw", cm::XenFeaturesetKind::kRaw},       {"xen-host", cm::XenFeaturesetKind::kHost},
      {"xen-pv", cm::XenFeaturesetKind::kPv},         {"xen-hvm", cm::XenFeaturesetKind::kHvm},
      {"xen-pv-max", cm::XenFeaturesetKind::kPvMax},  {"xen-hvm-max", cm::XenFeaturesetKind::kHvmMax},
  };
  Result<CpuPolicy> policy = Error(Code::kInvalidArgument, "unknown --from '" + a.from + "'");
  std::vector<std::string> notes;
  std::string what;
  if (a.from == "cpuid") {
    auto d = cm::DetectHostCpu();
    if (d.ok()) {
      policy = d->policy;
      notes = d->notes;
    } else {
      policy = d.status();
    }
    what = "CPUID instruction (the CPU as this OS sees it)";
  } else if (a.from == "kvm") {
    policy = cm::KvmSupportedPolicy();
    what = "KVM_GET_SUPPORTED_CPUID (what KVM can give a guest here)";
  } else {
    for (const auto& [name, kind] : kXen) {
      if (a.from == name) {
        policy = cm::XenFeatureset(kind);
        what = std::string("Xen ") + name + " featureset (XEN_SYSCTL_get_cpu_featureset)";
      }
    }
  }
  if (!policy.ok()) {
    spdlog::error("xmotion cpu host: {}", policy.status().message());
    return policy.status().code() == Code::kInvalidArgument ? kBadInput : kNotCompatible;
  }
  const CpuPolicy& p = *policy;
  if (!a.format.empty()) {
    cm::TextFormat f = a.format == "xapi"    ? cm::TextFormat::kXapi
                       : a.format == "names" ? cm::TextFormat::kNames
                       : a.format == "json"  ? cm::TextFormat::kJson
                                             : cm::TextFormat::kXen;
    std::printf("%s\n", cm::FormatPolicy(p, f).c_str());
    return kCompatible;
  }
  if (a.json) {
    json j = cm::PolicyToJson(p);
    j["source"] = a.from;
    j["xapi"] = cm::FormatWords(p.featureset, '-');
    j["notes"] = notes;
    PrintJson(j);
    return kCompatible;
  }
  std::printf("source:     %s\n", what.c_str());
  std::printf("vendor:     %s (%s)\n", p.vendor.c_str(), cm::ShortVendor(p.vendor).c_str());
  std::printf("policy:     %s\n", cm::FormatPolicy(p, cm::TextFormat::kXen).c_str());
  std::printf("xapi form:  %s\n", cm::FormatWords(p.featureset, '-').c_str());
  std::string count = std::to_string(Count(p));
  std::printf("features:   %s: %s\n", count.c_str(), Wrap(cm::SetBits(p.featureset), 14 + count.size(), 12).c_str());
  for (const std::string& n : notes) std::printf("note:       %s\n", n.c_str());
  return kCompatible;
}

// ---- cpu level ----

struct LevelArgs {
  std::vector<std::string> hosts;
  bool json = false;
};

int RunLevel(const LevelArgs& a) {
  auto hosts = LoadArgs(a.hosts, "host");
  if (!hosts.ok()) return BadInput("level", hosts.status());
  std::vector<CpuPolicy> policies;
  size_t width = 4;
  for (const NamedPolicy& h : *hosts) {
    policies.push_back(h.policy);
    width = std::max(width, h.name.size());
  }
  auto level = cm::ComputePoolLevel(policies);
  if (!level.ok()) {
    if (level.status().code() != Code::kIncompatible) return BadInput("level", level.status());
    // Name the hosts the message counts from 1.
    std::string msg = level.status().message() + " (";
    for (size_t i = 0; i < hosts->size(); ++i)
      msg += (i ? ", " : "") + std::to_string(i + 1) + "=" + (*hosts)[i].name;
    msg += ")";
    if (a.json) PrintJson({{"compatible", false}, {"error", msg}});
    else std::printf("cannot level: %s\n", msg.c_str());
    return kNotCompatible;
  }
  if (a.json) {
    json j{{"compatible", true}, {"level", cm::PolicyToJson(level->level)}};
    j["level"]["xapi"] = cm::FormatWords(level->level.featureset, '-');
    j["hosts"] = json::array();
    for (size_t i = 0; i < hosts->size(); ++i) {
      const NamedPolicy& h = (*hosts)[i];
      j["hosts"].push_back({{"name", h.name},
                            {"vendor", h.policy.vendor},
                            {"featureset", cm::FormatWords(h.policy.featureset, ':')},
                            {"features", Count(h.policy)},
                            {"loses", cm::Names(level->losses[i])}});
    }
    PrintJson(j);
    return kCompatible;
  }
  std::printf("pool of %zu hosts, %s\n", hosts->size(), VendorLabel(level->level.vendor).c_str());
  std::printf("pool level: %s\n", cm::FormatPolicy(level->level, cm::TextFormat::kXen).c_str());
  std::printf("            %zu features every host has\n", Count(level->level));
  for (size_t i = 0; i < hosts->size(); ++i) {
    const NamedPolicy& h = (*hosts)[i];
    const auto& lost = level->losses[i];
    if (lost.empty())
      std::printf("  %-*s loses nothing (%zu features)\n", static_cast<int>(width), h.name.c_str(), Count(h.policy));
    else
      std::printf("  %-*s loses %zu of %zu:\n      %s\n", static_cast<int>(width), h.name.c_str(), lost.size(),
                  Count(h.policy), Wrap(lost, 6, 6).c_str());
  }
  return kCompatible;
}

// ---- cpu check ----

struct CheckArgs {
  std::string vm, host, pool_level;
  bool json = false;
};

int RunCheck(const CheckArgs& a) {
  auto vm = LoadArg(a.vm, "vm");
  if (!vm.ok()) return BadInput("check", vm.status());
  auto host = LoadArg(a.host, "host");
  if (!host.ok()) return BadInput("check", host.status());
  std::optional<NamedPolicy> pool;
  if (!a.pool_level.empty()) {
    auto p = LoadArg(a.pool_level, "pool level");
    if (!p.ok()) return BadInput("check", p.status());
    pool = std::move(p).value();
  }
  Status st = cm::CheckVmFits(vm->policy, host->policy, pool ? &pool->policy : nullptr);
  if (!st.ok() && st.code() != Code::kIncompatible) return BadInput("check", st);
  if (a.json) {
    json j{{"compatible", st.ok()},
           {"vm", cm::PolicyToJson(vm->policy)},
           {"host", cm::PolicyToJson(host->policy)},
           {"missing_on_host", cm::Names(cm::Missing(vm->policy.featureset, host->policy.featureset))}};
    if (pool) {
      j["pool_level"] = cm::PolicyToJson(pool->policy);
      j["missing_in_pool_level"] = cm::Names(cm::Missing(vm->policy.featureset, pool->policy.featureset));
    }
    if (!st.ok()) j["error"] = st.message();
    PrintJson(j);
  } else if (st.ok()) {
    std::printf("compatible: %s's %zu features are all on %s%s\n", vm->name.c_str(), Count(vm->policy),
                host->name.c_str(), pool ? (" and in " + pool->name).c_str() : "");
  } else {
    std::printf("incompatible: %s cannot move to %s: %s\n", vm->name.c_str(), host->name.c_str(), st.message().c_str());
  }
  return st.ok() ? kCompatible : kNotCompatible;
}

// ---- cpu check-join ----

struct JoinArgs {
  std::vector<std::string> pool, vms;
  std::string host;
  bool json = false;
};

int RunCheckJoin(const JoinArgs& a) {
  auto pool = LoadArgs(SplitMembers(a.pool), "pool host");
  if (!pool.ok()) return BadInput("check-join", pool.status());
  auto host = LoadArg(a.host, "new host");
  if (!host.ok()) return BadInput("check-join", host.status());
  auto vms = LoadArgs(SplitMembers(a.vms), "vm");
  if (!vms.ok()) return BadInput("check-join", vms.status());
  std::vector<CpuPolicy> pool_p, vm_p;
  for (const auto& p : *pool) pool_p.push_back(p.policy);
  for (const auto& v : *vms) vm_p.push_back(v.policy);
  auto r = cm::CheckJoin(pool_p, host->policy, vm_p);
  if (!r.ok()) return BadInput("check-join", r.status());

  if (a.json) {
    json j{{"compatible", r->ok()},
           {"can_join", r->can_join()},
           {"host", host->name},
           {"level_before", cm::PolicyToJson(r->level_before)},
           {"level_after", cm::PolicyToJson(r->level_after)},
           {"pool_loses", cm::Names(r->pool_loses)},
           {"host_loses", cm::Names(r->host_loses)},
           {"vms", json::array()}};
    if (!r->can_join()) j["error"] = r->vendor_problem;
    for (size_t i = 0; i < vms->size(); ++i) {
      const auto& v = r->vms[i];
      json jv{{"name", (*vms)[i].name}, {"can_move", v.can_move()}, {"missing", cm::Names(v.missing)}};
      if (!v.vendor_problem.empty()) jv["error"] = v.vendor_problem;
      j["vms"].push_back(jv);
    }
    PrintJson(j);
    return r->ok() ? kCompatible : kNotCompatible;
  }
  std::printf("pool: %zu hosts, %s, level %s\n", pool->size(), VendorLabel(r->level_before.vendor).c_str(),
              cm::FormatPolicy(r->level_before, cm::TextFormat::kXen).c_str());
  if (!r->can_join()) {
    std::printf("%s cannot join: %s\n", host->name.c_str(), r->vendor_problem.c_str());
  } else {
    std::printf("%s can join (same vendor)\n", host->name.c_str());
    std::printf("new pool level: %s\n", cm::FormatPolicy(r->level_after, cm::TextFormat::kXen).c_str());
    if (r->pool_loses.empty())
      std::printf("  the pool level keeps all %zu features\n", Count(r->level_before));
    else
      std::printf("  the pool level loses %zu:\n      %s\n", r->pool_loses.size(), Wrap(r->pool_loses, 6, 6).c_str());
    if (r->host_loses.empty())
      std::printf("  %s hides nothing of its own\n", host->name.c_str());
    else
      std::printf("  %s hides %zu of its own:\n      %s\n", host->name.c_str(), r->host_loses.size(),
                  Wrap(r->host_loses, 6, 6).c_str());
  }
  for (size_t i = 0; i < vms->size(); ++i) {
    const auto& v = r->vms[i];
    const std::string& name = (*vms)[i].name;
    if (v.can_move())
      std::printf("  VM %s can still move to %s\n", name.c_str(), host->name.c_str());
    else if (!v.vendor_problem.empty())
      std::printf("  VM %s can never move to %s: %s\n", name.c_str(), host->name.c_str(), v.vendor_problem.c_str());
    else
      std::printf("  VM %s could no longer move to %s; it lacks %zu:\n      %s\n", name.c_str(), host->name.c_str(),
                  v.missing.size(), Wrap(v.missing, 6, 6).c_str());
  }
  return r->ok() ? kCompatible : kNotCompatible;
}

// One `xmotion cpu` subcommand: its --json flag and its runner; the caller adds the rest.
template <typename Args>
CLI::App* AddCpuCommand(CLI::App& cpu, Runner& run, const char* name, const char* help, std::shared_ptr<Args> args,
                        int (*fn)(const Args&)) {
  CLI::App* sub = cpu.add_subcommand(name, help);
  sub->add_flag("--json", args->json, "JSON output");
  sub->callback([&run, args, fn] { run = [args, fn] { return fn(*args); }; });
  return sub;
}

}  // namespace

void AddCpu(CLI::App& app, Runner& run) {
  CLI::App* cmd = app.add_subcommand("cpu", "CPU featuresets, pool levelling and compatibility checks");
  cmd->require_subcommand(1);
  cmd->footer(
      "A POLICY is [VENDOR:]HEX8:HEX8:... (Xen), [VENDOR:]HEX8-HEX8-... (XAPI), [VENDOR:]name,name,...\n"
      "or JSON, given inline, as @FILE or as a path; prefix NAME= to label it. VENDOR: intel, amd, ...\n"
      "Exit: 0 compatible, 1 not compatible, 2 bad input. See cpumask/README.md.\n");

  auto host = std::make_shared<HostArgs>();
  CLI::App* h = AddCpuCommand(*cmd, run, "host", "Print this host's CPU policy", host, RunHost);
  h->add_option("--from", host->from,
                "Where to read it: cpuid (default), kvm (KVM_GET_SUPPORTED_CPUID), xen-raw, xen-host, xen-pv, "
                "xen-hvm, xen-pv-max, xen-hvm-max")
      ->check(CLI::IsMember({"cpuid", "kvm", "xen-raw", "xen-host", "xen-pv", "xen-hvm", "xen-pv-max", "xen-hvm-max"}));
  h->add_option("--format", host->format, "Print only the policy, in this form")
      ->check(CLI::IsMember({"xen", "xapi", "names", "json"}));

  auto level = std::make_shared<LevelArgs>();
  CLI::App* l = AddCpuCommand(*cmd, run, "level", "Pool level of hosts (AND of their featuresets) and what each loses",
                              level, RunLevel);
  l->add_option("hosts", level->hosts, "Host policies")->required();

  auto check = std::make_shared<CheckArgs>();
  CLI::App* c = AddCpuCommand(*cmd, run, "check", "Can a VM with this policy move to this host?", check, RunCheck);
  c->add_option("--vm", check->vm, "The VM's CPU policy")->required();
  c->add_option("--host", check->host, "The destination host's policy")->required();
  c->add_option("--pool-level", check->pool_level, "Cross-pool: the destination pool's level");

  auto join = std::make_shared<JoinArgs>();
  CLI::App* j = AddCpuCommand(*cmd, run, "check-join", "What would joining this host to the pool do?", join, RunCheckJoin);
  j->add_option("--pool", join->pool, "The pool's hosts (comma-separated or repeated)")->required();
  j->add_option("--host", join->host, "The joining host")->required();
  j->add_option("--vms", join->vms, "Policies of the pool's VMs (comma-separated or repeated)");
}

}  // namespace xm::cli
