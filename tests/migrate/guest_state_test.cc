// The reports' source_guest / destination_guest come from the hypervisor's view
// of the guest (Backend::State), not from the engine's own flags: a crashed
// source is refused before anything moves, and a guest that crashes during
// pre-copy is reported "crashed", never "running". Sim guests in this process,
// a real receiver on loopback TCP.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "dirtylog/sim/sim_backend.h"
#include "dirtylog/workload.h"
#include "migrate/source/engine.h"
#include "migrate/destination/receiver.h"
#include "transport/socket_stream.h"

namespace xm {
namespace {

// A sim guest whose hypervisor can be told the guest crashed: from then on
// State() says so, Running() is false and the dirty log fails, as Xen's does
// for a crashed domain.
class CrashableGuest final : public Backend {
 public:
  explicit CrashableGuest(std::unique_ptr<SimBackend> inner) : in_(std::move(inner)) {}
  void Crash() { crashed_ = true; }
  // Crash when the dirty log is read after this many rounds.
  void CrashAfterRounds(int n) { crash_after_ = n; }

  std::string_view name() const override { return in_->name(); }
  const GuestShape& shape() const override { return in_->shape(); }
  Result<MappedPages> MapPages(std::span<const uint64_t> pfns, Access a) override { return in_->MapPages(pfns, a); }
  std::byte* DirectMemory() override { return in_->DirectMemory(); }
  Status EnableDirtyLog() override { return in_->EnableDirtyLog(); }
  Status FetchDirty(DirtyBitmap& out) override {
    if (crash_after_ >= 0 && ++fetches_ > crash_after_) crashed_ = true;
    if (crashed_) return Error(Code::kIo, "sim: the domain is not running (it crashed)");
    return in_->FetchDirty(out);
  }
  Status DisableDirtyLog() override { return in_->DisableDirtyLog(); }
  Status Pause() override { return in_->Pause(); }
  Status Resume() override {
    if (crashed_) return Error(Code::kIo, "sim: a crashed domain cannot be resumed");
    return in_->Resume();
  }
  Status SetThrottle(double f) override { return in_->SetThrottle(f); }
  bool Running() const override { return !crashed_ && in_->Running(); }
  GuestState State() const override { return crashed_ ? GuestState::kCrashed : in_->State(); }
  Result<std::vector<uint8_t>> SaveVcpuState() override { return in_->SaveVcpuState(); }
  Status LoadVcpuState(std::span<const uint8_t> b) override { return in_->LoadVcpuState(b); }
  Result<CpuPolicy> GetCpuPolicy() override { return in_->GetCpuPolicy(); }
  Result<CpuPolicy> ApplyCpuPolicy(const CpuPolicy& p) override { return in_->ApplyCpuPolicy(p); }
  Status Release() override { return in_->Release(); }
  GuestProgress Progress() override { return in_->Progress(); }

 private:
  std::unique_ptr<SimBackend> in_;
  std::atomic<bool> crashed_{false};
  int crash_after_ = -1;
  int fetches_ = 0;
};

std::unique_ptr<CrashableGuest> SmallGuest() {
  constexpr uint64_t kMem = 32ull << 20;
  auto spec = ParseWorkload("ws=16M,hot=4M,rate=50M/s", kMem);
  EXPECT_TRUE(spec.ok());
  auto sim = SimBackend::CreateSource(kMem, *spec, CpuPolicy{});
  EXPECT_TRUE(sim.ok()) << sim.status().ToString();
  return std::make_unique<CrashableGuest>(std::move(sim).value());
}

TEST(GuestState, NamesAreTheReportsVocabulary) {
  EXPECT_EQ(GuestStateName(GuestState::kRunning), "running");
  EXPECT_EQ(GuestStateName(GuestState::kPaused), "paused");
  EXPECT_EQ(GuestStateName(GuestState::kSuspended), "suspended");
  EXPECT_EQ(GuestStateName(GuestState::kCrashed), "crashed");
  EXPECT_EQ(GuestStateName(GuestState::kShutdown), "shutdown");
  EXPECT_EQ(GuestStateName(GuestState::kGone), "gone");
  EXPECT_TRUE(Migratable(GuestState::kRunning));
  EXPECT_TRUE(Migratable(GuestState::kPaused));
  for (auto s : {GuestState::kSuspended, GuestState::kCrashed, GuestState::kShutdown, GuestState::kGone})
    EXPECT_FALSE(Migratable(s)) << GuestStateName(s);
}

TEST(GuestState, ACrashedSourceIsRefusedBeforeAnyConnection) {
  auto guest = SmallGuest();
  guest->Crash();
  // Nothing listens on this port: a refusal that mentions the connection would
  // mean the engine tried the network for a guest it could never migrate.
  auto listener = Listener::Bind({"127.0.0.1", 0});
  ASSERT_TRUE(listener.ok());
  SourceOptions so;
  so.to = HostPort{"127.0.0.1", listener->port()};
  so.connect_timeout_ms = 2000;
  SourceEngine engine(*guest, so);
  MigrationReport r = engine.Run();
  EXPECT_EQ(r.result, "failed");
  EXPECT_EQ(r.source_guest, "crashed");
  EXPECT_EQ(r.exit_code, kExitFailed);
  EXPECT_NE(r.error.find("source guest is crashed"), std::string::npos) << r.error;
  EXPECT_EQ(r.error.find("connect"), std::string::npos) << r.error;
  EXPECT_EQ(r.ToJson()["source_guest"], "crashed");
  auto fd = listener->Accept(300);
  EXPECT_FALSE(fd.ok()) << "the engine connected for a crashed guest";
}

struct Both {
  MigrationReport src, dst;
};

// One migration of `guest` to a sim receiver in this process, over loopback TCP.
Both Migrate(Backend& guest, double downtime_target_ms) {
  Both out;
  auto listener = Listener::Bind({"127.0.0.1", 0});
  EXPECT_TRUE(listener.ok());
  if (!listener.ok()) return out;
  ReceiverOptions ro;
  ro.accept_timeout_ms = 20000;
  ro.io_timeout_ms = 20000;
  ro.make_backend = [](const GuestShape& shape, std::string_view) -> Result<std::unique_ptr<Backend>> {
    auto b = SimBackend::CreateDestination(shape);
    if (!b.ok()) return b.status();
    return std::unique_ptr<Backend>(std::move(b).value());
  };
  Receiver receiver(ro);
  std::thread t([&] { out.dst = receiver.Run(*listener); });
  SourceOptions so;
  so.to = HostPort{"127.0.0.1", listener->port()};
  so.io_timeout_ms = 20000;
  so.policy.downtime_target_ms = downtime_target_ms;
  SourceEngine engine(guest, so);
  out.src = engine.Run();
  t.join();
  return out;
}

TEST(GuestState, AGuestThatCrashesDuringPrecopyIsReportedCrashedOnBothSides) {
  auto guest = SmallGuest();
  guest->CrashAfterRounds(1);
  // A tiny target keeps it iterating: the crash comes at the second dirty-log read.
  auto [src, dst] = Migrate(*guest, 0.001);
  EXPECT_EQ(src.result, "failed");
  EXPECT_EQ(src.source_guest, "crashed") << src.error;
  EXPECT_NE(src.error.find("CRASHED"), std::string::npos) << src.error;
  EXPECT_NE(src.exit_code, kExitCompleted);
  EXPECT_NE(dst.result, "completed");
  EXPECT_EQ(dst.destination_guest, "gone") << "the half-built copy must be discarded";
}

TEST(GuestState, ACompletedMigrationReportsTheDestinationGuestRunning) {
  auto guest = SmallGuest();
  auto [src, dst] = Migrate(*guest, 300);
  ASSERT_EQ(src.result, "completed") << src.error;
  ASSERT_EQ(dst.result, "completed") << dst.error;
  EXPECT_EQ(src.source_guest, "released");
  EXPECT_EQ(dst.destination_guest, "running");
  EXPECT_EQ(src.ToJson()["schema"], kReportSchema);
  EXPECT_EQ(dst.ToJson()["schema"], "xmotion-report/1");
  EXPECT_EQ(dst.ToJson()["destination_guest"], "running");
  // The destination's own downtime: positive, its parts add up, and it is not
  // longer than the source's (which also counts the pause and the DONE trip).
  EXPECT_GT(dst.downtime_ms, 0);
  EXPECT_NEAR(dst.downtime_ms, dst.downtime.final_round_ms + dst.downtime.state_ms + dst.downtime.handoff_ms, 0.5);
  EXPECT_LE(dst.downtime_ms, src.downtime_ms + 5);
}

}  // namespace
}  // namespace xm
