// The KVM backend against the real /dev/kvm: a guest runs and counts, the dirty
// log reports what it writes, pause stops it, its state moves into a second VM
// in this process where it continues and its self-check passes (and fails when
// memory is damaged), and a CPU policy installed before the first run is what
// the guest's CPUID instruction sees. Skipped where /dev/kvm is unusable.
//
// Waits poll with a generous deadline only so a broken guest cannot hang the
// suite; nothing here asserts on timing.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <set>
#include <thread>

#include "cpumask/feature_table.h"
#include "cpumask/featureset.h"
#include "dirtylog/kvm/cpu_policy.h"
#include "dirtylog/kvm/guest_abi.h"
#include "dirtylog/kvm/guest_image.h"
#include "dirtylog/kvm/kvm_backend.h"
#include "dirtylog/kvm/vcpu_state.h"

namespace xm {
namespace {

constexpr auto kDeadline = std::chrono::seconds(60);
// Indices into the CPUID words the guest reports (XMG_C_* / 4).
constexpr int kCpuid1Ecx = XMG_C_1_ECX / 4;
constexpr int kCpuid81Ecx = XMG_C_81_ECX / 4;

#define SKIP_WITHOUT_KVM()                                                   \
  do {                                                                       \
    if (Status st = KvmBackend::Usable(); !st.ok())                          \
      GTEST_SKIP() << "needs a usable /dev/kvm: " << st.ToString();          \
  } while (0)

bool WaitFor(const std::function<bool()>& pred) {
  auto end = std::chrono::steady_clock::now() + kDeadline;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

KvmSourceOptions Options(const std::string& workload, uint64_t memory = 64ull << 20, uint32_t vcpus = 1) {
  KvmSourceOptions o;
  o.memory_bytes = memory;
  auto spec = ParseWorkload(workload, memory);
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  if (spec.ok()) o.workload = *spec;
  o.vcpus = vcpus;
  o.pass_interval_ms = 20;
  return o;
}

std::unique_ptr<KvmBackend> Source(const KvmSourceOptions& o) {
  auto b = KvmBackend::CreateSource(o);
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  return b.ok() ? std::move(b).value() : nullptr;
}

uint64_t Counter(KvmBackend& b) { return b.Progress().counter; }

bool Booted(KvmBackend& b) {
  auto r = b.GuestReport();
  for (const auto& v : r.vcpus)
    if (!v.reported) return false;
  return true;
}

// Everything a migration does to the guest, minus the network: pause the
// source, copy memory, move the vCPU state and CPU policy, resume the copy.
std::unique_ptr<KvmBackend> MoveTo(KvmBackend& src, std::optional<CpuPolicy> policy = std::nullopt,
                                   const std::function<void(std::byte*)>& tamper = {}) {
  EXPECT_TRUE(src.Pause().ok());
  auto blob = src.SaveVcpuState();
  EXPECT_TRUE(blob.ok()) << blob.status().ToString();
  auto dst = KvmBackend::CreateDestination(src.shape());
  EXPECT_TRUE(dst.ok()) << dst.status().ToString();
  if (!blob.ok() || !dst.ok()) return nullptr;
  auto& d = *dst;
  std::memcpy(d->DirectMemory(), src.DirectMemory(), src.shape().memory_bytes());
  if (tamper) tamper(d->DirectMemory());
  Status st = d->LoadVcpuState(*blob);
  EXPECT_TRUE(st.ok()) << st.ToString();
  if (!policy) {
    auto p = src.GetCpuPolicy();
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    policy = *p;
  }
  auto applied = d->ApplyCpuPolicy(*policy);
  EXPECT_TRUE(applied.ok()) << applied.status().ToString();
  EXPECT_TRUE(src.Release().ok());
  st = d->Resume();
  EXPECT_TRUE(st.ok()) << st.ToString();
  return std::move(dst).value();
}

TEST(KvmBackend, GuestRunsAndItsCounterAdvances) {
  SKIP_WITHOUT_KVM();
  auto g = Source(Options("ws=16M,hot=4M,rate=0"));
  ASSERT_TRUE(g);
  EXPECT_TRUE(g->Running());
  ASSERT_TRUE(WaitFor([&] { return Booted(*g); })) << g->DescribeGuest();
  uint64_t c0 = Counter(*g);
  ASSERT_TRUE(WaitFor([&] { return Counter(*g) > c0 + 1024; })) << g->DescribeGuest();
  // The guest's own check of its memory runs and passes.
  ASSERT_TRUE(WaitFor([&] { return g->Progress().checks_passed >= 2; })) << g->DescribeGuest();
  EXPECT_EQ(g->Progress().checks_failed, 0u) << g->DescribeGuest();
  EXPECT_TRUE(g->GuestReport().fatal.empty()) << g->DescribeGuest();
}

TEST(KvmBackend, DirtyLogReportsExactlyThePagesTheGuestWrites) {
  SKIP_WITHOUT_KVM();
  auto o = Options("ws=16M,hot=1M,rate=0");
  auto layout = kvm::PlanGuest(o.memory_bytes, o.workload, o.vcpus);
  ASSERT_TRUE(layout.ok());
  auto g = Source(o);
  ASSERT_TRUE(g);
  ASSERT_TRUE(WaitFor([&] { return Booted(*g); }));
  ASSERT_TRUE(g->EnableDirtyLog().ok());
  const uint64_t hot_first_pfn = layout->ws_gpa / 4096, hot = layout->hot_pages;
  uint64_t c0 = Counter(*g);
  // Two laps over the hot pages: every one of them has been written since.
  ASSERT_TRUE(WaitFor([&] { return Counter(*g) > c0 + 2 * hot; })) << g->DescribeGuest();
  DirtyBitmap dirty(g->shape().page_count);
  ASSERT_TRUE(g->FetchDirty(dirty).ok());
  for (uint64_t p = hot_first_pfn; p < hot_first_pfn + hot; ++p) ASSERT_TRUE(dirty.Test(p)) << "hot pfn " << p;
  // Nothing else but the guest's status page and stack.
  std::set<uint64_t> allowed = {XMG_STATUS_GPA / 4096, (kvm::GuestStackTop(0) - 1) / 4096};
  dirty.ForEach([&](uint64_t p) {
    if (p >= hot_first_pfn && p < hot_first_pfn + hot) return;
    EXPECT_TRUE(allowed.count(p)) << "pfn " << p << " reported dirty but the guest never writes it";
  });
  // Paused, the guest writes nothing: after one fetch to drain, the log stays empty.
  ASSERT_TRUE(g->Pause().ok());
  DirtyBitmap drain(g->shape().page_count), after(g->shape().page_count);
  ASSERT_TRUE(g->FetchDirty(drain).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(g->FetchDirty(after).ok());
  EXPECT_EQ(after.Count(), 0u);
  // Running again, the log picks writes up again.
  ASSERT_TRUE(g->Resume().ok());
  uint64_t c1 = Counter(*g);
  ASSERT_TRUE(WaitFor([&] { return Counter(*g) > c1 + 2 * hot; }));
  ASSERT_TRUE(g->FetchDirty(after).ok());
  EXPECT_GE(after.Count(), hot);
  EXPECT_TRUE(g->DisableDirtyLog().ok());
}

TEST(KvmBackend, PauseStopsTheGuestAndResumeContinuesIt) {
  SKIP_WITHOUT_KVM();
  auto g = Source(Options("ws=8M,hot=2M,rate=0"));
  ASSERT_TRUE(g);
  ASSERT_TRUE(WaitFor([&] { return Counter(*g) > 0; }));
  ASSERT_TRUE(g->Pause().ok());
  EXPECT_FALSE(g->Running());
  uint64_t at_pause = Counter(*g);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(Counter(*g), at_pause);
  ASSERT_TRUE(g->Resume().ok());
  EXPECT_TRUE(g->Running());
  ASSERT_TRUE(WaitFor([&] { return Counter(*g) > at_pause; }));
  EXPECT_EQ(g->PauseLatencies().size(), 1u);
  // Throttled to 20%, the guest still runs and still pauses.
  ASSERT_TRUE(g->SetThrottle(0.2).ok());
  uint64_t c = Counter(*g);
  ASSERT_TRUE(WaitFor([&] { return Counter(*g) > c + 1000; }));
  ASSERT_TRUE(g->Pause().ok());
  uint64_t p = Counter(*g);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(Counter(*g), p);
  EXPECT_FALSE(g->SetThrottle(0).ok());
  EXPECT_FALSE(g->SetThrottle(1.5).ok());
}

TEST(KvmBackend, StateMovesToASecondVmWhereTheGuestContinuesAndItsChecksPass) {
  SKIP_WITHOUT_KVM();
  auto a = Source(Options("ws=16M,hot=4M,rate=50M/s"));
  ASSERT_TRUE(a);
  ASSERT_TRUE(WaitFor([&] { return a->Progress().checks_passed >= 1; })) << a->DescribeGuest();
  auto b = MoveTo(*a);
  ASSERT_TRUE(b);
  const uint64_t at_pause = Counter(*a);
  EXPECT_FALSE(a->Running());
  EXPECT_FALSE(a->Resume().ok()) << "a released guest must not run again";
  EXPECT_GE(Counter(*b), at_pause);
  // The copy keeps counting from where the source stopped, and checks its memory.
  ASSERT_TRUE(WaitFor([&] { return Counter(*b) > at_pause + 1000; })) << b->DescribeGuest();
  ASSERT_TRUE(WaitFor([&] { return b->Progress().checks_passed >= 2; })) << b->DescribeGuest();
  EXPECT_EQ(b->Progress().checks_failed, 0u) << b->DescribeGuest();
  EXPECT_TRUE(b->GuestReport().fatal.empty()) << b->DescribeGuest();
  // And moves on again, back into a third VM.
  auto c = MoveTo(*b);
  ASSERT_TRUE(c);
  uint64_t at_second = Counter(*b);
  ASSERT_TRUE(WaitFor([&] { return Counter(*c) > at_second + 1000 && c->Progress().checks_passed >= 2; }))
      << c->DescribeGuest();
  EXPECT_EQ(c->Progress().checks_failed, 0u) << c->DescribeGuest();
}

TEST(KvmBackend, TwoVcpusMigrateAndBothKeepCounting) {
  SKIP_WITHOUT_KVM();
  auto a = Source(Options("ws=16M,hot=4M,rate=0", 64ull << 20, 2));
  ASSERT_TRUE(a);
  ASSERT_TRUE(WaitFor([&] { return Booted(*a) && a->Progress().checks_passed >= 2; })) << a->DescribeGuest();
  auto b = MoveTo(*a);
  ASSERT_TRUE(b);
  auto before = a->GuestReport();
  ASSERT_EQ(before.vcpus.size(), 2u);
  ASSERT_TRUE(WaitFor([&] {
    auto r = b->GuestReport();
    return r.vcpus[0].status.counter > before.vcpus[0].status.counter &&
           r.vcpus[1].status.counter > before.vcpus[1].status.counter && r.passes_ok >= 2;
  })) << b->DescribeGuest();
  EXPECT_EQ(b->Progress().checks_failed, 0u) << b->DescribeGuest();
}

// A pass that was under way when the guest moved checked part of the memory
// on the source: it must not count as a check done on the destination.
TEST(KvmBackend, OnlyPassesThatStartedHereCount) {
  SKIP_WITHOUT_KVM();
  auto o = Options("ws=32M");  // no writer: the guest checks back to back
  o.pass_interval_ms = 0;
  auto a = Source(o);
  ASSERT_TRUE(a);
  ASSERT_TRUE(WaitFor([&] { return a->Progress().checks_passed >= 1; }));
  ASSERT_TRUE(a->Pause().ok());
  const kvm::GuestStatus at_pause = a->GuestReport().vcpus[0].status;
  const bool mid_pass = at_pause.check_pos != 0;
  auto b = MoveTo(*a);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->GuestReport().vcpus[0].partial_pass, mid_pass);
  ASSERT_TRUE(WaitFor([&] { return b->Progress().checks_passed >= 1; })) << b->DescribeGuest();
  // The guest's lifetime count (in its memory) shows how many passes ended
  // since the move: two if the first was the one begun on the source.
  uint64_t ended = b->GuestReport().vcpus[0].status.passes_ok - at_pause.passes_ok;
  EXPECT_GE(ended, mid_pass ? 2u : 1u);
  EXPECT_EQ(b->Progress().checks_failed, 0u);
}

// The self-check is not a rubber stamp: damage that a broken migration could
// do (a stale page, a corrupted word) makes a pass fail and names the page.
TEST(KvmBackend, SelfCheckCatchesDamagedMemory) {
  SKIP_WITHOUT_KVM();
  auto o = Options("ws=16M,hot=4M,rate=0");
  auto layout = kvm::PlanGuest(o.memory_bytes, o.workload, o.vcpus);
  ASSERT_TRUE(layout.ok());
  const uint64_t cold_index = layout->hot_pages + 7;  // a page the guest never writes
  auto a = Source(o);
  ASSERT_TRUE(a);
  ASSERT_TRUE(WaitFor([&] { return a->Progress().checks_passed >= 1; }));
  auto b = MoveTo(*a, std::nullopt, [&](std::byte* mem) {
    mem[layout->ws_gpa + cold_index * 4096 + XMG_FP_OFF1] ^= std::byte{1};  // a word every pass samples
  });
  ASSERT_TRUE(b);
  ASSERT_TRUE(WaitFor([&] { return b->Progress().checks_failed >= 1; })) << b->DescribeGuest();
  EXPECT_EQ(b->GuestReport().last_bad_page, cold_index);

  // A hot page whose latest write did not arrive: its stamp is behind the
  // counter. The writer is slowed down (a lap over the hot pages takes 2 s) so
  // the check reaches the page before the next write would repair it.
  auto slow = Options("ws=16M,hot=4M,rate=2M/s");
  auto c = Source(slow);
  ASSERT_TRUE(c);
  ASSERT_TRUE(WaitFor([&] { return Counter(*c) > 16; }));
  auto d = MoveTo(*c, std::nullopt, [&](std::byte* mem) {
    uint64_t* stamp = reinterpret_cast<uint64_t*>(mem + layout->ws_gpa + 5 * 4096);
    *stamp -= layout->hot_pages;  // the value of the write before the last one
  });
  ASSERT_TRUE(d);
  ASSERT_TRUE(WaitFor([&] { return d->Progress().checks_failed >= 1; })) << d->DescribeGuest();
}

// Feature bit (word * 32 + bit, Xen's featureset order) by name.
uint32_t Bit(const char* name) {
  const cpumask::FeatureInfo* f = cpumask::FindFeature(name);
  EXPECT_NE(f, nullptr) << name;
  return f ? f->bit : 0;
}
bool Has(const std::vector<uint32_t>& fs, uint32_t bit) { return bit / 32 < fs.size() && (fs[bit / 32] >> (bit % 32)) & 1; }
void Hide(std::vector<uint32_t>& fs, uint32_t bit) { fs[bit / 32] &= ~(1u << (bit % 32)); }

TEST(KvmBackend, CpuPolicyAppliedBeforeTheFirstRunIsWhatTheGuestSees) {
  SKIP_WITHOUT_KVM();
  const uint32_t cx16 = Bit("cx16"), lahf = Bit("lahf_lm");
  ASSERT_EQ(cx16, 1 * 32 + 13) << "CPUID 1.ecx bit 13";
  ASSERT_EQ(lahf, 3 * 32 + 0) << "CPUID 0x80000001.ecx bit 0";
  auto o = Options("ws=4M,hot=1M,rate=10M/s");
  auto plain = Source(o);
  ASSERT_TRUE(plain);
  ASSERT_TRUE(WaitFor([&] { return Booted(*plain); }));
  const KvmGuestReport seen_plain_report = plain->GuestReport();
  const auto& seen_plain = seen_plain_report.vcpus[0].seen_cpuid;
  if (!(seen_plain[kCpuid1Ecx] & (1u << 13)) || !(seen_plain[kCpuid81Ecx] & 1u))
    GTEST_SKIP() << "this KVM offers no CX16 / LAHF_LM to hide";
  auto policy = plain->GetCpuPolicy();
  ASSERT_TRUE(policy.ok());
  EXPECT_EQ(policy->format, kvm::kCpuidFormat);
  EXPECT_FALSE(policy->vendor.empty());
  EXPECT_TRUE(Has(policy->featureset, cx16));
  EXPECT_TRUE(Has(policy->featureset, lahf));

  // A new guest booted with CX16 masked never sees it; nothing else goes.
  CpuPolicy masked = *policy;
  Hide(masked.featureset, cx16);
  o.cpu_policy = masked;
  auto g = Source(o);
  ASSERT_TRUE(g);
  ASSERT_TRUE(WaitFor([&] { return Booted(*g); }));
  const KvmGuestReport seen_report = g->GuestReport();
  const auto& seen = seen_report.vcpus[0].seen_cpuid;
  EXPECT_FALSE(seen[kCpuid1Ecx] & (1u << 13));
  EXPECT_TRUE(seen[kCpuid81Ecx] & 1u);
  auto read_back = g->GetCpuPolicy();
  ASSERT_TRUE(read_back.ok());
  EXPECT_FALSE(Has(read_back->featureset, cx16));
  // Once it ran, KVM would refuse a different CPUID: the backend says so first.
  EXPECT_FALSE(g->ApplyCpuPolicy(*policy).ok());

  // A migrating guest: the destination's mask (LAHF_LM hidden) is what it sees after the move.
  CpuPolicy no_lahf = *policy;
  Hide(no_lahf.featureset, lahf);
  auto moved = MoveTo(*plain, no_lahf);
  ASSERT_TRUE(moved);
  ASSERT_TRUE(WaitFor([&] { return moved->Progress().checks_passed >= 1; })) << moved->DescribeGuest();
  const KvmGuestReport after_report = moved->GuestReport();
  const auto& after = after_report.vcpus[0].seen_cpuid;
  EXPECT_FALSE(after[kCpuid81Ecx] & 1u);
  EXPECT_TRUE(after[kCpuid1Ecx] & (1u << 13));
}

// The host policy a destination checks a guest against must cover what a
// guest here really sees (KVM_GET_SUPPORTED_CPUID alone does not, on PVM).
TEST(KvmBackend, HostPolicyCoversWhatAGuestSees) {
  SKIP_WITHOUT_KVM();
  auto host = KvmBackend::HostPolicy();
  ASSERT_TRUE(host.ok()) << host.status().ToString();
  auto g = Source(Options("ws=4M,hot=1M,rate=10M/s"));
  ASSERT_TRUE(g);
  ASSERT_TRUE(WaitFor([&] { return Booted(*g); }));
  auto guest = g->GetCpuPolicy();
  ASSERT_TRUE(guest.ok());
  EXPECT_EQ(guest->vendor, host->vendor);
  EXPECT_TRUE(cpumask::IsSubset(guest->featureset, host->featureset))
      << "host lacks " << cpumask::JoinNames(cpumask::Missing(guest->featureset, host->featureset));
  // And it is what the CPUID instruction in the guest returns (leaf 1 ECX,
  // bar the bits that mirror the guest's own state: OSXSAVE, and the
  // hypervisor bit which the policy keeps as an environment bit).
  uint32_t seen = g->GuestReport().vcpus[0].seen_cpuid[kCpuid1Ecx];
  uint32_t env = (1u << 27) | (1u << 31);
  EXPECT_EQ(seen & ~env, host->featureset[1] & ~env);
}

// Bits KVM forces on cannot be hidden; Apply must say so by what it reads
// back, and the guest must see exactly that read-back, not the request.
TEST(KvmBackend, AppliedPolicyIsTheReadBackIncludingForcedBits) {
  SKIP_WITHOUT_KVM();
  auto dst = KvmBackend::CreateDestination(GuestShape{4096, 1024, {{0, 1024}}, 1});
  ASSERT_TRUE(dst.ok()) << dst.status().ToString();
  auto policy = (*dst)->GetCpuPolicy();
  ASSERT_TRUE(policy.ok());
  CpuPolicy none = *policy;
  for (auto& w : none.featureset) w = 0;  // ask for no features at all
  auto applied = (*dst)->ApplyCpuPolicy(none);
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  auto again = (*dst)->GetCpuPolicy();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(applied->featureset, again->featureset);
  EXPECT_EQ(applied->blob, again->blob);
  EXPECT_FALSE(Has(applied->featureset, Bit("cx16")));
}

TEST(KvmBackend, StateBlobIsVersionedAndComplete) {
  SKIP_WITHOUT_KVM();
  auto g = Source(Options("ws=4M,hot=1M,rate=0"));
  ASSERT_TRUE(g);
  ASSERT_TRUE(WaitFor([&] { return Counter(*g) > 0; }));
  EXPECT_FALSE(g->SaveVcpuState().ok()) << "saving a running guest must fail";
  ASSERT_TRUE(g->Pause().ok());
  auto blob = g->SaveVcpuState();
  ASSERT_TRUE(blob.ok()) << blob.status().ToString();
  auto sum = kvm::SummarizeState(*blob);
  ASSERT_TRUE(sum.ok());
  EXPECT_EQ(sum->version, kvm::kStateVersion);
  EXPECT_EQ(sum->vcpus, 1u);
  std::set<std::string> names;
  for (auto& [n, bytes] : sum->section_bytes) names.insert(n);
  for (const char* want : {"regs", "fpu", "xsave", "xcrs", "msrs", "lapic", "vcpu_events", "debugregs", "mp_state",
                           "tsc_khz", "cpuid", "clock", "irqchip"})
    EXPECT_TRUE(names.count(want)) << "missing section " << want;
  EXPECT_TRUE(names.count("sregs") || names.count("sregs2"));

  auto dst = KvmBackend::CreateDestination(g->shape());
  ASSERT_TRUE(dst.ok());
  EXPECT_FALSE((*dst)->Resume().ok()) << "a destination without vCPU state must not run";
  std::vector<uint8_t> bad = *blob;
  bad[4] = 99;  // version
  EXPECT_EQ((*dst)->LoadVcpuState(bad).code(), Code::kVersion);
  bad = *blob;
  bad.resize(bad.size() - 3);
  EXPECT_FALSE((*dst)->LoadVcpuState(bad).ok());
  GuestShape two = g->shape();
  two.vcpus = 2;
  auto dst2 = KvmBackend::CreateDestination(two);
  ASSERT_TRUE(dst2.ok());
  EXPECT_EQ((*dst2)->LoadVcpuState(*blob).code(), Code::kIncompatible);
}

TEST(KvmBackend, RejectsWorkloadsThatDoNotFit) {
  SKIP_WITHOUT_KVM();
  KvmSourceOptions o;
  o.memory_bytes = 64ull << 20;
  o.workload.ws_bytes = 64ull << 20;  // no room left for the payload's tables
  auto b = KvmBackend::CreateSource(o);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), Code::kInvalidArgument);
  o.workload.ws_bytes = 0;
  o.vcpus = 9;
  EXPECT_FALSE(KvmBackend::CreateSource(o).ok());
}

}  // namespace
}  // namespace xm
