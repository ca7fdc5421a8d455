// Shared setup for tests that need io_uring: skips, saying why, where the ring
// cannot be created (they then say nothing about the transport).
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "tests/uring/loopback.h"
#include "transport/uring_stream.h"

namespace xm::testing {

class UringTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ring = UringRing::Create(8);
    if (!ring.ok()) GTEST_SKIP() << "io_uring unavailable here: " << ring.status().ToString();
    caps_ = ring->caps();
  }

  static std::unique_ptr<UringStream> Wrap(UniqueFd fd, const UringOptions& o = {}) {
    auto ring = UringStream::MakeRing(o);
    EXPECT_TRUE(ring.ok()) << ring.status().ToString();
    auto s = UringStream::Create(std::move(fd), std::move(ring).value(), o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return std::move(s).value();
  }

  UringCaps caps_;
};

}  // namespace xm::testing
