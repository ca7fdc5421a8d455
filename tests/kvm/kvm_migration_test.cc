// Whole migrations of a KVM guest through the real engine and receiver over
// loopback TCP, in one process: a guest hops ten times (each destination
// becoming the next source) and must keep counting with every self-check
// passing; a destination that refuses after the source paused must leave the
// source guest running. Skipped where /dev/kvm is unusable.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "cpumask/feature_table.h"
#include "cpumask/featureset.h"
#include "cpumask/levelling.h"
#include "dirtylog/kvm/guest_abi.h"
#include "dirtylog/kvm/kvm_backend.h"
#include "migrate/source/engine.h"
#include "migrate/destination/receiver.h"
#include "transport/socket_stream.h"

namespace xm {
namespace {

constexpr auto kDeadline = std::chrono::seconds(60);

#define SKIP_WITHOUT_KVM()                                          \
  do {                                                              \
    if (Status st = KvmBackend::Usable(); !st.ok())                 \
      GTEST_SKIP() << "needs a usable /dev/kvm: " << st.ToString(); \
  } while (0)

template <typename Pred>
bool WaitFor(Pred pred) {
  auto end = std::chrono::steady_clock::now() + kDeadline;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

struct Hop {
  MigrationReport source, destination;
  std::unique_ptr<Backend> guest;  // the destination's, when it completed
};

// One migration of `guest` to a receiver in this process.
Hop Migrate(Backend& guest, const std::function<void(ReceiverOptions&)>& tweak = {}) {
  auto listener = Listener::Bind({"127.0.0.1", 0});
  EXPECT_TRUE(listener.ok()) << listener.status().ToString();
  Hop hop;
  if (!listener.ok()) return hop;
  ReceiverOptions ro;
  ro.accept_timeout_ms = 30000;
  ro.io_timeout_ms = 30000;
  ro.make_backend = [](const GuestShape& shape, std::string_view backend) -> Result<std::unique_ptr<Backend>> {
    if (backend != "kvm") return Error(Code::kIncompatible, "this test hosts kvm guests only");
    auto b = KvmBackend::CreateDestination(shape);
    if (!b.ok()) return b.status();
    return std::unique_ptr<Backend>(std::move(b).value());
  };
  if (tweak) tweak(ro);
  Receiver receiver(ro);
  std::thread t([&] { hop.destination = receiver.Run(*listener); });
  SourceOptions so;
  so.to = HostPort{"127.0.0.1", listener->port()};
  so.io_timeout_ms = 30000;
  SourceEngine engine(guest, so);
  hop.source = engine.Run();
  t.join();
  if (hop.destination.result == "completed") hop.guest = receiver.TakeGuest();
  return hop;
}

KvmSourceOptions SmallGuest() {
  KvmSourceOptions o;
  o.memory_bytes = 64ull << 20;
  o.workload = ParseWorkload("ws=32M,hot=8M,rate=20M/s", o.memory_bytes).value();
  o.pass_interval_ms = 20;
  return o;
}

TEST(KvmMigration, TenBackToBackHopsKeepTheGuestCountingAndItsChecksPassing) {
  SKIP_WITHOUT_KVM();
  auto first = KvmBackend::CreateSource(SmallGuest());
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  std::unique_ptr<Backend> guest = std::move(first).value();
  ASSERT_TRUE(WaitFor([&] { return guest->Progress().checks_passed >= 1; }));
  for (int i = 1; i <= 10; ++i) {
    SCOPED_TRACE("hop " + std::to_string(i));
    Hop hop = Migrate(*guest);
    ASSERT_EQ(hop.source.result, "completed") << hop.source.error;
    ASSERT_EQ(hop.destination.result, "completed") << hop.destination.error;
    EXPECT_TRUE(hop.source.digest_match);
    ASSERT_TRUE(hop.guest);
    EXPECT_FALSE(guest->Running()) << "the old copy must stop for good";
    uint64_t at_pause = hop.source.guest.value_or(nlohmann::json::object()).value("counter_at_pause", 0ull);
    EXPECT_GT(at_pause, 0u);
    EXPECT_GE(hop.guest->Progress().counter, at_pause);
    // Like the demo: the hop counts once the new copy has run and checked all its memory.
    auto& g = *hop.guest;
    ASSERT_TRUE(WaitFor([&] { return g.Progress().checks_passed >= 1 && g.Progress().counter > at_pause; }))
        << static_cast<KvmBackend&>(g).DescribeGuest();
    EXPECT_EQ(g.Progress().checks_failed, 0u) << static_cast<KvmBackend&>(g).DescribeGuest();
    EXPECT_TRUE(static_cast<KvmBackend&>(g).GuestReport().fatal.empty());
    guest = std::move(hop.guest);
  }
}

TEST(KvmMigration, SourceGuestRunsOnWhenTheDestinationRefusesAfterThePause) {
  SKIP_WITHOUT_KVM();
  auto src = KvmBackend::CreateSource(SmallGuest());
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  KvmBackend& guest = **src;
  ASSERT_TRUE(WaitFor([&] { return guest.Progress().checks_passed >= 1; }));
  // The destination fails after the vCPU state arrived, i.e. after the source
  // paused its guest and before GO: the source must resume it.
  Hop hop = Migrate(guest, [](ReceiverOptions& ro) {
    ro.check_applied_cpu = [](const CpuPolicy&, const CpuPolicy&, std::vector<std::string>&) {
      return Error(Code::kIncompatible, "test: refusing after the state arrived");
    };
  });
  EXPECT_NE(hop.source.result, "completed");
  EXPECT_NE(hop.destination.result, "completed");
  EXPECT_FALSE(hop.guest);
  EXPECT_GT(hop.source.downtime.pause_ms + hop.source.downtime.final_round_ms, 0.0) << "the source never paused";
  EXPECT_EQ(hop.source.source_guest, "running");
  EXPECT_TRUE(guest.Running());
  uint64_t c = guest.Progress().counter;
  ASSERT_TRUE(WaitFor([&] { return guest.Progress().counter > c; }));
  uint64_t passes = guest.Progress().checks_passed;
  ASSERT_TRUE(WaitFor([&] { return guest.Progress().checks_passed > passes; }));
  EXPECT_EQ(guest.Progress().checks_failed, 0u) << guest.DescribeGuest();
}

// The guest reports the CPUID it sees over port IO. A feature the pool masks
// (CX16 here, which this KVM lets us hide) stays hidden across the move, and the
// guest sees exactly the same CPUID words before and after, with the real
// checks of `xmotion receive` on the way (fits the host, applied = wanted).
TEST(KvmMigration, MaskedCpuidIsIdenticalBeforeAndAfterMigration) {
  SKIP_WITHOUT_KVM();
  auto host = KvmBackend::HostPolicy();
  ASSERT_TRUE(host.ok()) << host.status().ToString();
  const cpumask::FeatureInfo* cx16 = cpumask::FindFeature("cx16");
  ASSERT_NE(cx16, nullptr);
  if (!cpumask::TestBit(host->featureset, cx16->bit)) GTEST_SKIP() << "this KVM offers no CX16 to hide";
  KvmSourceOptions o = SmallGuest();
  CpuPolicy masked = *host;
  masked.featureset[cx16->bit / 32] &= ~(1u << (cx16->bit % 32));
  o.cpu_policy = masked;
  auto src = KvmBackend::CreateSource(o);
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  KvmBackend& guest = **src;
  ASSERT_TRUE(WaitFor([&] { return guest.Progress().checks_passed >= 1; }));
  const KvmGuestReport report_before = guest.GuestReport();
  const auto& seen_before = report_before.vcpus[0].seen_cpuid;
  std::vector<uint32_t> before(std::begin(seen_before), std::end(seen_before));
  EXPECT_FALSE(before[XMG_C_1_ECX / 4] & (1u << 13)) << "the source guest sees CX16 (CPUID 1.ecx bit 13)";
  std::vector<std::string> warnings;
  Hop hop = Migrate(guest, [&](ReceiverOptions& ro) {
    ro.check_cpu = [h = *host](const CpuPolicy& vm) { return cpumask::CheckVmFits(vm, h, nullptr); };
    ro.check_applied_cpu = [&](const CpuPolicy& wanted, const CpuPolicy& applied, std::vector<std::string>& w) {
      Status st = cpumask::CheckApplied(wanted, applied, w);
      warnings = w;
      return st;
    };
  });
  ASSERT_EQ(hop.source.result, "completed") << hop.source.error;
  ASSERT_EQ(hop.destination.result, "completed") << hop.destination.error;
  ASSERT_TRUE(hop.guest);
  auto& moved = static_cast<KvmBackend&>(*hop.guest);
  // The guest reports its CPUID again at its next check pass on the destination.
  ASSERT_TRUE(WaitFor([&] { return moved.Progress().checks_passed >= 1; })) << moved.DescribeGuest();
  const KvmGuestReport report_after = moved.GuestReport();
  const auto& seen_after = report_after.vcpus[0].seen_cpuid;
  std::vector<uint32_t> after(std::begin(seen_after), std::end(seen_after));
  EXPECT_EQ(before, after) << guest.DescribeGuest() << "\n" << moved.DescribeGuest();
  auto policy_after = moved.GetCpuPolicy();
  ASSERT_TRUE(policy_after.ok());
  EXPECT_FALSE(cpumask::TestBit(policy_after->featureset, cx16->bit)) << "CX16 must stay hidden";
  EXPECT_FALSE(after[XMG_C_1_ECX / 4] & (1u << 13)) << "the destination guest sees CX16";
  EXPECT_EQ(moved.Progress().checks_failed, 0u);
}

}  // namespace
}  // namespace xm
