// Text forms of a CPU policy: round trips through every form, vendors, files,
// and malformed input rejected with errors that name the bad part.
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cpumask/feature_table.h"
#include "cpumask/policy_text.h"

namespace xm::cpumask {
namespace {

using ::testing::HasSubstr;

// A realistic 19-word host featureset in `xl info` hw_caps form.
constexpr const char* kHwCaps =
    "178bfbff:fffa3203:2e500800:004003f3:0000000f:f1bf07ab:00405fc6:00000100:50020005:00000110:"
    "00000030:00000004:00000000:00000000:00000000:00000000:00000000:00000000:00000006";

CpuPolicy Parse(std::string_view text) {
  auto p = ParsePolicy(text);
  EXPECT_TRUE(p.ok()) << text << ": " << p.status().ToString();
  return p.ok() ? *p : CpuPolicy{};
}

std::string ParseError(std::string_view text) {
  auto p = ParsePolicy(text);
  EXPECT_FALSE(p.ok()) << text << " parsed";
  if (p.ok()) return {};
  EXPECT_EQ(p.status().code(), Code::kInvalidArgument);
  return p.status().message();
}

// Equal as XAPI compares: the shorter featureset zero-extended.
bool SameSet(const FeatureWords& a, const FeatureWords& b) {
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i)
    if ((i < a.size() ? a[i] : 0) != (i < b.size() ? b[i] : 0)) return false;
  return true;
}

std::string WriteTemp(const std::string& name, const std::string& content) {
  std::string path = testing::TempDir() + "/" + name;
  std::ofstream(path) << content;
  return path;
}

TEST(PolicyText, XenFormRoundTrips) {
  CpuPolicy p = Parse(std::string("amd:") + kHwCaps);
  EXPECT_EQ(p.vendor, "AuthenticAMD");
  ASSERT_EQ(p.featureset.size(), 19u);
  EXPECT_EQ(p.featureset[0], 0x178bfbffu);
  EXPECT_EQ(p.featureset[18], 6u);
  EXPECT_EQ(p.format, "none");
  EXPECT_EQ(FormatPolicy(p, TextFormat::kXen), std::string("amd:") + kHwCaps);
}

TEST(PolicyText, XapiFormRoundTrips) {
  std::string xapi = "intel:1fcbfbff-f7fa3223-2d93fbff-00000023-00000001-000007ab-00000000-00000000-00001000-0c000000";
  CpuPolicy p = Parse(xapi);
  EXPECT_EQ(p.vendor, "GenuineIntel");
  ASSERT_EQ(p.featureset.size(), 10u);  // an older Xen's shorter featureset
  EXPECT_EQ(p.featureset[9], 0x0c000000u);
  EXPECT_EQ(FormatPolicy(p, TextFormat::kXapi), xapi);
  // The same words in the other form.
  EXPECT_EQ(FormatPolicy(Parse(FormatPolicy(p, TextFormat::kXen)), TextFormat::kXapi), xapi);
}

TEST(PolicyText, NamesFormRoundTrips) {
  CpuPolicy p = Parse(std::string("amd:") + kHwCaps);
  std::string names = FormatPolicy(p, TextFormat::kNames);
  EXPECT_THAT(names, HasSubstr("amd:fpu,vme,"));
  EXPECT_THAT(names, HasSubstr(",avx2,"));
  CpuPolicy back = Parse(names);
  EXPECT_EQ(back.vendor, p.vendor);
  EXPECT_TRUE(SameSet(back.featureset, p.featureset));
}

TEST(PolicyText, NamesFormKeepsBitsXenDoesNotName) {
  CpuPolicy p;
  p.vendor = "GenuineIntel";
  p.featureset = {1u << 10 | 1u << 26};  // 1.edx bit 10 is reserved, 26 is sse2
  std::string names = FormatPolicy(p, TextFormat::kNames);
  EXPECT_EQ(names, "intel:word0.bit10,sse2");
  EXPECT_TRUE(SameSet(Parse(names).featureset, p.featureset));
}

TEST(PolicyText, EmptyFeaturesetPrintsAsWords) {
  CpuPolicy p;
  p.vendor = "GenuineIntel";
  std::string names = FormatPolicy(p, TextFormat::kNames);
  EXPECT_EQ(names, "intel:00000000");
  EXPECT_TRUE(SameSet(Parse(names).featureset, {}));
}

TEST(PolicyText, JsonRoundTrips) {
  CpuPolicy p = Parse(std::string("intel:") + kHwCaps);
  std::string j = FormatPolicy(p, TextFormat::kJson);
  auto parsed = nlohmann::json::parse(j);
  EXPECT_EQ(parsed["vendor"], "GenuineIntel");
  EXPECT_EQ(parsed["featureset"], kHwCaps);
  EXPECT_TRUE(parsed["features"].is_array());
  CpuPolicy back = Parse(j);
  EXPECT_EQ(back.vendor, p.vendor);
  EXPECT_EQ(back.featureset, p.featureset);
}

TEST(PolicyText, JsonAcceptsWordArraysNamesAndShortVendors) {
  CpuPolicy a = Parse(R"({"vendor": "amd", "featureset": [67108864, 0, 0, 0, 0, 32]})");
  EXPECT_EQ(a.vendor, "AuthenticAMD");
  CpuPolicy b = Parse(R"({"vendor": "AuthenticAMD", "features": ["sse2", "avx2"]})");
  EXPECT_TRUE(SameSet(a.featureset, b.featureset));
  CpuPolicy c = Parse(R"({"featureset": "04000000-00000000-00000000-00000000-00000000-00000020",
                          "features": ["avx2", "sse2"], "source": "ignored"})");
  EXPECT_EQ(c.vendor, "");
  EXPECT_TRUE(SameSet(c.featureset, a.featureset));
  EXPECT_TRUE(Parse(R"({"vendor": "intel", "featureset": ""})").featureset.empty());
}

TEST(PolicyText, VendorsAndAliases) {
  EXPECT_EQ(Parse("GenuineIntel:sse2").vendor, "GenuineIntel");
  EXPECT_EQ(Parse("INTEL:sse2").vendor, "GenuineIntel");
  EXPECT_EQ(Parse("hygon:sse2").vendor, "HygonGenuine");
  EXPECT_EQ(Parse("zhaoxin:sse2").vendor, "  Shanghai  ");
  EXPECT_EQ(Parse("sse2").vendor, "");
  EXPECT_EQ(Parse("04000000:00000000").vendor, "");
  // Round trip of a vendor with no short name (kept verbatim).
  CpuPolicy p = Parse("NewVendorXYZ:sse2");
  EXPECT_EQ(p.vendor, "NewVendorXYZ");
  EXPECT_EQ(Parse(FormatPolicy(p, TextFormat::kXen)).vendor, "NewVendorXYZ");
}

TEST(PolicyText, OneWordAndWhitespaceSeparatedNames) {
  EXPECT_EQ(Parse("intel:04000000").featureset, FeatureWords{0x04000000});
  CpuPolicy p = Parse("  intel:\n  sse2 avx2,\n  avx512f\n");
  EXPECT_EQ(p.vendor, "GenuineIntel");
  EXPECT_EQ(FormatPolicy(p, TextFormat::kNames), "intel:sse2,avx2,avx512f");
  // "de" is a feature (Debugging Extensions), not a hex word.
  EXPECT_EQ(FormatPolicy(Parse("de"), TextFormat::kNames), "de");
}

TEST(PolicyText, MalformedWordsAreNamed) {
  EXPECT_THAT(ParseError("intel:178bfbff:zz000000:00000000"), HasSubstr("word 1 'zz000000' is not 8 hex digits"));
  EXPECT_THAT(ParseError("178bfbff-f7fa3223-2d93fb"), HasSubstr("word 2 '2d93fb' is not 8 hex digits"));
  EXPECT_THAT(ParseError("178bfbff:0000000000"), HasSubstr("word 1 '0000000000'"));
  EXPECT_THAT(ParseError("178bfbff::00000000"), HasSubstr("word 1 is empty"));
  EXPECT_THAT(ParseError("178bfbff:"), HasSubstr("word 1 is empty"));
  EXPECT_THAT(ParseError("178bfbff:00000000-00000000"), HasSubstr("mixes ':' (Xen) and '-' (XAPI)"));
  std::string long_words = "00000000";
  for (int i = 0; i < 256; ++i) long_words += ":00000000";
  EXPECT_THAT(ParseError(long_words), HasSubstr("more than 256 words"));
}

TEST(PolicyText, MalformedNamesAndVendorsAreNamed) {
  EXPECT_THAT(ParseError("intel:sse2,avx513f,avx2"), HasSubstr("unknown CPU feature 'avx513f'"));
  EXPECT_THAT(ParseError("078bfbf"), HasSubstr("'078bfbf' is neither a feature name nor"));
  EXPECT_THAT(ParseError("intle:sse2"), HasSubstr("unknown CPU vendor 'intle'"));
  EXPECT_THAT(ParseError("intel:"), HasSubstr("no featureset after vendor 'intel'"));
  EXPECT_THAT(ParseError("   "), HasSubstr("empty CPU policy"));
  EXPECT_THAT(ParseError("word0.bit32"), HasSubstr("unknown CPU feature 'word0.bit32'"));
}

TEST(PolicyText, MalformedJsonIsNamed) {
  EXPECT_THAT(ParseError("{\"vendor\": "), HasSubstr("not valid JSON"));
  EXPECT_THAT(ParseError("{\"vendor\": 3, \"features\": []}"), HasSubstr("\"vendor\" must be a string"));
  EXPECT_THAT(ParseError("{\"vendor\": \"intel\"}"), HasSubstr("needs \"featureset\""));
  EXPECT_THAT(ParseError("{\"featureset\": [1, 4294967296]}"), HasSubstr("word 1 '4294967296'"));
  EXPECT_THAT(ParseError("{\"featureset\": [1, -2]}"), HasSubstr("word 1 '-2'"));
  EXPECT_THAT(ParseError("{\"featureset\": \"178bfbff:xyz\"}"), HasSubstr("word 1 'xyz'"));
  EXPECT_THAT(ParseError("{\"features\": [\"sse2\", \"avx9\"]}"), HasSubstr("'avx9'"));
  EXPECT_THAT(ParseError(R"({"featureset": "04000000", "features": ["sse2", "avx2"]})"),
              HasSubstr("disagree; only in features: avx2"));
  EXPECT_THAT(ParseError(R"({"featureset": "04000001", "features": ["sse2"]})"),
              HasSubstr("only in featureset: fpu"));
}

TEST(PolicyText, FilesByAtAndByPath) {
  std::string path = WriteTemp("host.fs", "# a host written by hand\nintel:\nsse2 avx2\n# trailing comment\n");
  CpuPolicy at = Parse("@" + path);
  CpuPolicy plain = Parse(path);
  EXPECT_EQ(at.vendor, "GenuineIntel");
  EXPECT_EQ(FormatPolicy(at, TextFormat::kNames), "intel:sse2,avx2");
  EXPECT_EQ(plain.featureset, at.featureset);
  std::string json = WriteTemp("host.json", FormatPolicy(at, TextFormat::kJson));
  EXPECT_EQ(Parse(json).featureset, at.featureset);
}

TEST(PolicyText, FileErrorsNameTheFile) {
  EXPECT_THAT(ParseError("@/nonexistent/h.fs"), HasSubstr("cannot open CPU policy file '/nonexistent/h.fs'"));
  EXPECT_THAT(ParseError("/nonexistent/h.fs"), HasSubstr("no such CPU policy file '/nonexistent/h.fs'"));
  EXPECT_THAT(ParseError("nonexistent.fs"), HasSubstr("unknown CPU feature 'nonexistent.fs'"));
  EXPECT_THAT(ParseError("nonexistent.fs"), HasSubstr("no file named 'nonexistent.fs' either"));
  std::string bad = WriteTemp("bad.fs", "intel:178bfbff:0000g000\n");
  std::string msg = ParseError(bad);
  EXPECT_THAT(msg, HasSubstr("file '" + bad + "'"));
  EXPECT_THAT(msg, HasSubstr("word 1 '0000g000'"));
}

}  // namespace
}  // namespace xm::cpumask
