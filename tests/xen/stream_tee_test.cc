// The stream tee around a sim destination, driven the way the receiver drives
// a destination: pages written through MapPages(kWrite), ROUND_END after each
// round, vCPU state, CPU policy, resume. The file must then hold exactly the
// destination's memory, pass Xen's verifier, and say it is synthetic.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "dirtylog/registry.h"
#include "dirtylog/sim/sim_backend.h"
#include "dirtylog/xen/stream/reader.h"
#include "dirtylog/xen/stream/tee.h"
#include "dirtylog/workload.h"
#include "tests/xen/xen_test_util.h"

namespace xm::xen {
namespace {

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// A vCPU blob the sim destination accepts: from a paused sim source.
std::vector<uint8_t> SimVcpuBlob(uint64_t bytes) {
  auto spec = ParseWorkload("", bytes);
  EXPECT_TRUE(spec.ok());
  auto src = SimBackend::CreateSource(bytes, *spec, CpuPolicy{});
  EXPECT_TRUE(src.ok());
  EXPECT_TRUE((*src)->Pause().ok());
  auto blob = (*src)->SaveVcpuState();
  EXPECT_TRUE(blob.ok());
  return *blob;
}

class TeeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::TempPath("tee.libxl");
    shape_.page_size = 4096;
    shape_.page_count = 4096;
    shape_.ranges = {{0, 4096}};
    shape_.vcpus = 2;
  }
  void TearDown() override { std::filesystem::remove(path_); }

  std::unique_ptr<Backend> MakeTee(std::optional<CpuPolicy> policy) {
    BackendOptions o;
    o.backend = "sim";
    o.xen_stream_out = path_;
    o.incoming_policy = std::move(policy);
    auto b = xm::CreateDestination(o, shape_, "sim");
    EXPECT_TRUE(b.ok()) << b.status().message();
    return std::move(b).value();
  }

  // Writes `pfns` with fresh random content through the backend, as the receiver does.
  void WriteRound(Backend& b, const std::vector<uint64_t>& pfns, uint32_t seed) {
    auto m = b.MapPages(pfns, Access::kWrite);
    ASSERT_TRUE(m.ok()) << m.status().message();
    std::mt19937_64 rng(seed);
    for (std::byte* p : m->pages)
      for (size_t i = 0; i < 4096; i += 8) {
        uint64_t v = rng();
        std::memcpy(p + i, &v, 8);
      }
  }

  std::string path_;
  GuestShape shape_;
};

TEST_F(TeeTest, WritesTheReceivedGuestRoundByRound) {
  CpuPolicy policy;
  policy.vendor = "GenuineIntel";
  policy.featureset = {0x178bfbff, 0xf6d8320b, 0, 0, 0, 0x219c91a9};
  policy.format = "none";
  auto tee = MakeTee(policy);
  EXPECT_EQ(tee->DirectMemory(), nullptr) << "the tee must see every page written";
  EXPECT_EQ(tee->name(), "sim");

  std::vector<uint64_t> all;
  for (uint64_t p = 0; p < 4096; ++p) all.push_back(p);
  // Round 0 in two batches, like two PAGES records.
  WriteRound(*tee, std::vector<uint64_t>(all.begin(), all.begin() + 3000), 1);
  WriteRound(*tee, std::vector<uint64_t>(all.begin() + 3000, all.end()), 2);
  ASSERT_TRUE(tee->OnRoundEnd(0).ok());
  // Round 1: a few pages again, one of them twice in the round.
  WriteRound(*tee, {5, 17, 4000}, 3);
  WriteRound(*tee, {17}, 4);
  ASSERT_TRUE(tee->OnRoundEnd(1).ok());
  // Final round: one page.
  WriteRound(*tee, {9}, 5);
  ASSERT_TRUE(tee->OnRoundEnd(2).ok());
  ASSERT_TRUE(tee->LoadVcpuState(SimVcpuBlob(16 << 20)).ok());
  auto applied = tee->ApplyCpuPolicy(policy);
  ASSERT_TRUE(applied.ok()) << applied.status().message();

  // The stream is complete before the guest resumes.
  auto bytes = ReadFile(path_);
  SpanSource src(bytes);
  auto img = ReadStream(src, ReadOptions{Framing::kLibxl, false});
  ASSERT_TRUE(img.ok()) << img.status().message();
  EXPECT_EQ(img->page_count(), 4096u);
  EXPECT_EQ(img->page_versions, 4096u + 3 + 1);  // page 17 once in round 1: the round's last content
  auto m = tee->MapPages(all, Access::kRead);
  ASSERT_TRUE(m.ok());
  for (uint64_t p = 0; p < 4096; ++p)
    ASSERT_EQ(std::memcmp(img->Page(p), m->pages[p], 4096), 0) << "pfn " << p;
  EXPECT_TRUE(img->state.synthetic);
  auto walk = WalkHvmContext(img->state.hvm_context);
  ASSERT_TRUE(walk.ok());
  EXPECT_EQ(std::count_if(walk->begin(), walk->end(), [](const HvmSaveEntry& e) { return e.typecode == kHvmSaveCpu; }),
            2);
  ASSERT_TRUE(img->policy.has_value());
  CpuPolicy back = ToCpuPolicy(*img->policy);
  EXPECT_EQ(back.vendor, "GenuineIntel");
  EXPECT_EQ(back.featureset[5], 0x219c91a9u);
  EXPECT_NE(XenStreamTeeSummary(*tee).find("SYNTHETIC"), std::string::npos);
  EXPECT_NE(XenStreamTeeSummary(*tee).find("complete"), std::string::npos);

  ASSERT_TRUE(tee->Resume().ok());
  EXPECT_TRUE(tee->Running());
  EXPECT_EQ(ReadFile(path_), bytes) << "resume must not add to a finished stream";

  std::string why;
  if (auto v = testing::FindVerifier(&why)) {
    auto r = testing::RunVerifier(*v, bytes, "libxl");
    EXPECT_EQ(r.exit_code, 0) << r.output;
  }
}

TEST_F(TeeTest, DiscardRemovesThePartialStream) {
  auto tee = MakeTee(std::nullopt);
  WriteRound(*tee, {1, 2, 3}, 1);
  ASSERT_TRUE(tee->OnRoundEnd(0).ok());
  ASSERT_TRUE(std::filesystem::exists(path_));
  tee->Discard();
  EXPECT_FALSE(std::filesystem::exists(path_));
}

TEST_F(TeeTest, WithoutAPolicyTheStreamHasNoPolicyRecords) {
  auto tee = MakeTee(std::nullopt);
  WriteRound(*tee, {0}, 1);
  ASSERT_TRUE(tee->OnRoundEnd(0).ok());
  ASSERT_TRUE(tee->Resume().ok());  // no vCPU state, no policy: still a complete, synthetic stream
  auto bytes = ReadFile(path_);
  SpanSource src(bytes);
  auto img = ReadStream(src, ReadOptions{});
  ASSERT_TRUE(img.ok()) << img.status().message();
  EXPECT_FALSE(img->policy.has_value());
  EXPECT_NE(XenStreamTeeSummary(*tee).find("no CPU policy"), std::string::npos);
}

TEST_F(TeeTest, AnUnwritablePathFailsTheDestination) {
  BackendOptions o;
  o.backend = "sim";
  o.xen_stream_out = "/nonexistent-dir/x.libxl";
  auto b = xm::CreateDestination(o, shape_, "sim");
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("/nonexistent-dir/x.libxl"), std::string::npos);
}

}  // namespace
}  // namespace xm::xen
