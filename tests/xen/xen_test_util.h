// Helpers for the Xen stream tests: synthetic guests (pages, a hand-built
// guest state shaped like Xen's, a policy), and Xen's own verify-stream-v2
// from the xen-utils-4.17 package that scripts/setup.d/xen-verifier unpacks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dirtylog/xen/stream/cpu_policy.h"
#include "dirtylog/xen/stream/guest_state.h"
#include "dirtylog/xen/stream/writer.h"

namespace xm::xen::testing {

// `count` pages of deterministic pseudo-random content (seeded), one in
// `zero_every` left all-zero (0 = none).
std::vector<std::byte> MakePages(size_t count, uint64_t seed, size_t zero_every = 0);
std::vector<const std::byte*> PagePointers(const std::vector<std::byte>& pages, std::vector<uint64_t> indexes);

// A guest state laid out as Xen's save code lays it out — an HVM context with a
// HEADER, one CPU record per vCPU and a few other device records, END; TSC
// info; the non-zero HVM params of a typical guest; a QEMU context — but built
// by hand for tests: it was not recorded from a running Xen.
XenGuestState FixtureGuestState(uint32_t vcpus, uint32_t salt);

// A policy as Xen serialises one: vendor leaf, feature leaves, an MSR.
XenCpuPolicy FixturePolicy();

// Path of verify-stream-v2 and of the python package it imports, or empty
// with `why` set when scripts/setup has not unpacked them.
struct Verifier {
  std::string script;
  std::string pythonpath;
};
std::optional<Verifier> FindVerifier(std::string* why);

struct VerifyResult {
  int exit_code = -1;
  std::string output;  // stdout + stderr
};
// Runs `verify-stream-v2 -f <format> -i <file>` on `bytes`.
VerifyResult RunVerifier(const Verifier& v, const std::vector<uint8_t>& bytes, const std::string& format);

std::string TempPath(const std::string& name);

}  // namespace xm::xen::testing

#define XM_REQUIRE_VERIFIER(v)                                                                     \
  std::string xm_why_;                                                                             \
  auto v = ::xm::xen::testing::FindVerifier(&xm_why_);                                             \
  if (!v) GTEST_SKIP() << "Xen's verify-stream-v2 is not available: " << xm_why_                   \
                       << " (run scripts/setup, or scripts/setup.d/xen-verifier, with a reachable " \
                          "Debian mirror)"
