// PageAccess: the same pages whether the backend maps directly or per batch.
#include "dirtylog/page_access.h"

#include <gtest/gtest.h>

#include "dirtylog/faulty_backend.h"
#include "dirtylog/sim/sim_backend.h"

namespace xm {
namespace {

TEST(PageAccess, DirectAndMappedPathsAgree) {
  auto sim = SimBackend::CreateDestination(GuestShape{4096, 64, {{0, 64}}, 1});
  ASSERT_TRUE(sim.ok());
  std::byte* base = (*sim)->DirectMemory();
  ASSERT_NE(base, nullptr);
  BackendFaults hide;
  hide.hide_direct_memory = true;
  FaultyBackend mapped(std::move(sim).value(), hide);
  ASSERT_EQ(mapped.DirectMemory(), nullptr);
  PageAccess via_map(mapped), direct(mapped.inner());
  std::vector<uint64_t> pfns{3, 9, 63};
  ASSERT_TRUE(via_map.Map(pfns, Access::kWrite).ok());
  ASSERT_TRUE(direct.Map(pfns, Access::kWrite).ok());
  for (size_t i = 0; i < pfns.size(); ++i) {
    EXPECT_EQ(via_map.page(i), base + pfns[i] * 4096);
    EXPECT_EQ(direct.page(i), base + pfns[i] * 4096);
  }
  EXPECT_EQ(mapped.map_calls(), 1u);
  auto one = via_map.One(5, Access::kRead);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(*one, base + 5 * 4096);
}

TEST(PageAccess, MapLinearRefusesPfnsOutsideTheGuest) {
  GuestShape shape{4096, 8, {{0, 8}}, 1};
  std::vector<std::byte> mem(8 * 4096);
  std::vector<uint64_t> bad{2, 8};
  auto m = MapLinear(mem.data(), shape, bad, "test");
  EXPECT_EQ(m.status().code(), Code::kInvalidArgument);
  EXPECT_NE(m.status().message().find("test: pfn 8"), std::string::npos);
}

}  // namespace
}  // namespace xm
