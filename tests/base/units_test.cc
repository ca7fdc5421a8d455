// Size, percentage and rate parsing for the command line, and FormatBytes for reports.
#include "base/units.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

namespace xm {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

uint64_t Size(std::string_view text) {
  auto r = ParseSize(text);
  EXPECT_TRUE(r.ok()) << text << ": " << r.status().ToString();
  return r.ok() ? *r : 0;
}

void ExpectBadSize(std::string_view text, std::string_view why) {
  auto r = ParseSize(text);
  ASSERT_FALSE(r.ok()) << "'" << text << "' parsed as " << *r;
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find(why), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("'" + std::string(text) + "'"), std::string::npos)
      << "error should quote the input: " << r.status().message();
}

TEST(ParseSize, PlainNumbers) {
  EXPECT_EQ(Size("0"), 0u);
  EXPECT_EQ(Size("4096"), 4096u);
  EXPECT_EQ(Size("  4096 \t"), 4096u);
  EXPECT_EQ(Size("18446744073709551615"), kMax);
}

TEST(ParseSize, BinarySuffixes) {
  EXPECT_EQ(Size("64K"), 64u << 10);
  EXPECT_EQ(Size("512M"), 512ull << 20);
  EXPECT_EQ(Size("1G"), 1ull << 30);
  EXPECT_EQ(Size("3T"), 3ull << 40);
  EXPECT_EQ(Size("1k"), 1024u);
  EXPECT_EQ(Size("1m"), 1u << 20);
  EXPECT_EQ(Size("1g"), 1u << 30);
  EXPECT_EQ(Size("2t"), 2ull << 40);
}

TEST(ParseSize, SuffixSpellings) {
  EXPECT_EQ(Size("1KiB"), 1024u);
  EXPECT_EQ(Size("1KB"), 1024u);
  EXPECT_EQ(Size("1kb"), 1024u);
  EXPECT_EQ(Size("1Kib"), 1024u);
  EXPECT_EQ(Size("1GiB"), 1ull << 30);
  EXPECT_EQ(Size("12B"), 12u);
  EXPECT_EQ(Size("12b"), 12u);
  EXPECT_EQ(Size("2 M"), 2u << 20);
}

TEST(ParseSize, Rejects) {
  ExpectBadSize("", "empty");
  ExpectBadSize("   ", "empty");
  ExpectBadSize("abc", "expected a number");
  ExpectBadSize("-1", "expected a number");
  ExpectBadSize("M", "expected a number");
  ExpectBadSize("1X", "unknown unit");
  ExpectBadSize("1.5G", "unknown unit");
  ExpectBadSize("1iB", "unknown unit");
  ExpectBadSize("1Ki", "unexpected");
  ExpectBadSize("1KBB", "unexpected");
  ExpectBadSize("1BB", "unexpected");
  ExpectBadSize("1G extra", "unexpected");
}

TEST(ParseSize, Overflow) {
  ExpectBadSize("18446744073709551616", "too large");
  ExpectBadSize("99999999999999999999999", "too large");
  // 2^24 T = 2^64: one past the largest representable value.
  ExpectBadSize("16777216T", "too large");
  EXPECT_EQ(Size("16777215T"), 16777215ull << 40);
  ExpectBadSize("17179869184G", "too large");  // 2^34 G = 2^64
  EXPECT_EQ(Size("17179869183G"), 17179869183ull << 30);
}

uint64_t Pct(std::string_view text, uint64_t total) {
  auto r = ParseSizeOrPercent(text, total);
  EXPECT_TRUE(r.ok()) << text << ": " << r.status().ToString();
  return r.ok() ? *r : 0;
}

TEST(ParseSizeOrPercent, Percentages) {
  EXPECT_EQ(Pct("75%", 1ull << 30), 768ull << 20);
  EXPECT_EQ(Pct("100%", 1ull << 30), 1ull << 30);
  EXPECT_EQ(Pct("0%", 1ull << 30), 0u);
  EXPECT_EQ(Pct("50.5%", 1000), 505u);
  EXPECT_EQ(Pct("33%", 10), 3u);  // rounded down
  EXPECT_EQ(Pct(" 25% ", 400), 100u);
  EXPECT_EQ(Pct("50%", 0), 0u);
}

TEST(ParseSizeOrPercent, LargeTotals) {
  // A long double keeps 64 bits of mantissa, so halving the largest total is exact.
  EXPECT_EQ(Pct("50%", kMax), kMax / 2);
  EXPECT_EQ(Pct("100%", 1ull << 62), 1ull << 62);
}

TEST(ParseSizeOrPercent, FallsBackToSizes) {
  EXPECT_EQ(Pct("1K", 10), 1024u);  // absolute sizes are not capped by the total here
  EXPECT_EQ(Pct("512M", 1ull << 30), 512ull << 20);
}

TEST(ParseSizeOrPercent, Rejects) {
  for (std::string_view bad : {"101%", "-1%", "%", "abc%", "50%%", "1e3%", "50x%"}) {
    auto r = ParseSizeOrPercent(bad, 1000);
    EXPECT_FALSE(r.ok()) << "'" << bad << "' parsed as " << *r;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    }
  }
  EXPECT_FALSE(ParseSizeOrPercent("", 1000).ok());
  EXPECT_FALSE(ParseSizeOrPercent("1Q", 1000).ok());
}

TEST(ParseRate, WithAndWithoutPerSecond) {
  auto a = ParseRate("500M/s");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, 500ull << 20);
  auto b = ParseRate("500M");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, 500ull << 20);
  auto c = ParseRate("0");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, 0u);
  auto d = ParseRate(" 1G/s ");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, 1ull << 30);
}

TEST(ParseRate, Rejects) {
  for (std::string_view bad : {"/s", "", "10K/h", "fast", "1G/s/s", "16777216T/s"}) {
    auto r = ParseRate(bad);
    EXPECT_FALSE(r.ok()) << "'" << bad << "' parsed as " << *r;
  }
}

TEST(FormatBytes, Units) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1), "1 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1024), "1.0 KiB");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(1ull << 20), "1.0 MiB");
  EXPECT_EQ(FormatBytes(768ull << 20), "768.0 MiB");
  EXPECT_EQ(FormatBytes(1ull << 30), "1.0 GiB");
  EXPECT_EQ(FormatBytes(5ull << 40), "5.0 TiB");
  // TiB is the largest unit: bigger values keep counting in TiB.
  EXPECT_EQ(FormatBytes(1ull << 50), "1024.0 TiB");
  EXPECT_EQ(FormatBytes(kMax), "16777216.0 TiB");
}

TEST(FormatBytes, ParsesBackForWholeUnits) {
  for (uint64_t v : {1ull << 10, 3ull << 20, 7ull << 30, 2ull << 40}) {
    std::string s = FormatBytes(v);  // e.g. "3.0 MiB"
    std::string compact = s.substr(0, s.find('.')) + s.substr(s.find(' ') + 1);
    EXPECT_EQ(Size(compact), v) << s;
  }
}

}  // namespace
}  // namespace xm
