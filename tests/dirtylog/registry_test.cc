// The backend registry: one table, looked up by name everywhere.
#include "dirtylog/registry.h"

#include <gtest/gtest.h>

#include <set>

namespace xm {
namespace {

TEST(BackendRegistry, NamesAreUniqueAndEveryEntryIsComplete) {
  std::set<std::string_view> names;
  for (const BackendInfo* b : Backends()) {
    EXPECT_TRUE(names.insert(b->name).second) << b->name;
    EXPECT_FALSE(b->summary.empty()) << b->name;
    EXPECT_NE(b->usable, nullptr) << b->name;
    EXPECT_NE(b->host_policy, nullptr) << b->name;
    EXPECT_NE(b->open_source, nullptr) << b->name;
    EXPECT_NE(b->create_destination, nullptr) << b->name;
  }
  EXPECT_TRUE(names.count("sim"));
  EXPECT_TRUE(names.count("kvm"));
  EXPECT_TRUE(names.count("xen"));
}

// An unknown name is a usage error (exit 2) everywhere, naming the choices.
TEST(BackendRegistry, UnknownNameIsAUsageErrorEverywhere) {
  EXPECT_EQ(FindBackend("bhyve").status().code(), Code::kInvalidArgument);
  EXPECT_NE(FindBackend("bhyve").status().message().find("unknown backend (sim"), std::string::npos);
  EXPECT_EQ(BackendUsable("bhyve").code(), Code::kInvalidArgument);
  BackendOptions o;
  o.backend = "bhyve";
  EXPECT_EQ(OpenSource(o).status().code(), Code::kInvalidArgument);
  GuestShape shape{4096, 16, {{0, 16}}, 1};
  EXPECT_EQ(CreateDestination(o, shape, "bhyve").status().code(), Code::kInvalidArgument);
}

TEST(BackendRegistry, DestinationMustHostTheSourcesKindOfGuest) {
  BackendOptions o;
  o.backend = "sim";
  GuestShape shape{4096, 16, {{0, 16}}, 1};
  EXPECT_EQ(CreateDestination(o, shape, "kvm").status().code(), Code::kIncompatible);
}

TEST(BackendRegistry, SimThroughTheTable) {
  BackendOptions o;
  o.backend = "sim";
  o.memory_bytes = 1 << 20;
  o.workload = "ws=512K";
  auto src = OpenSource(o);
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  EXPECT_EQ((*src)->name(), "sim");
  EXPECT_NE((*src)->DirectMemory(), nullptr);
  auto dst = CreateDestination(o, (*src)->shape(), "sim");
  ASSERT_TRUE(dst.ok()) << dst.status().ToString();
  EXPECT_EQ((*dst)->shape(), (*src)->shape());
  auto info = FindBackend("sim");
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE((*info)->caps.starts_guest);
  EXPECT_TRUE((*info)->caps.direct_memory);
}

TEST(BackendRegistry, NamesTextListsTheBuiltBackends) {
  std::string text = BackendNamesText();
  for (const std::string& n : AvailableBackends()) EXPECT_NE(text.find(n), std::string::npos) << text;
}

}  // namespace
}  // namespace xm
