// Status/Result: codes, context chaining and the XM_TRY family of macros.
#include "base/status.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <memory>
#include <set>
#include <string>

namespace xm {
namespace {

TEST(Status, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), Code::kOk);
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s.ToString(), "ok");
  EXPECT_TRUE(Status::Ok().ok());
}

TEST(Status, WithPrefixesContextInOrder) {
  Status s = Error(Code::kProtocol, "bad magic");
  s.With("handshake").With("session 7");
  EXPECT_EQ(s.code(), Code::kProtocol);
  EXPECT_EQ(s.message(), "session 7: handshake: bad magic");
  EXPECT_EQ(s.ToString(), "protocol: session 7: handshake: bad magic");
}

TEST(Status, WithOnRvalue) {
  Status s = Error(Code::kIo, "reset").With("round 3");
  EXPECT_EQ(s.message(), "round 3: reset");
}

TEST(Status, WithLeavesOkAlone) {
  Status s;
  s.With("context");
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.message(), "");
}

TEST(Status, CodeNamesAreDistinct) {
  std::set<std::string_view> names;
  for (int c = static_cast<int>(Code::kOk); c <= static_cast<int>(Code::kInternal); ++c) {
    std::string_view n = CodeName(static_cast<Code>(c));
    EXPECT_NE(n, "unknown") << "code " << c;
    names.insert(n);
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(Code::kInternal) + 1);
  EXPECT_EQ(CodeName(Code::kIntegrity), "integrity");
  EXPECT_EQ(CodeName(static_cast<Code>(999)), "unknown");
}

TEST(Status, ErrnoErrorCarriesStrerror) {
  Status s = ErrnoError("open /nope", ENOENT);
  EXPECT_EQ(s.code(), Code::kIo);
  EXPECT_EQ(s.message(), "open /nope: No such file or directory");
}

Result<int> FortyTwo() { return 42; }

TEST(Result, HoldsValue) {
  Result<int> r = FortyTwo();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 42);
  EXPECT_EQ(r.value(), 42);
  EXPECT_TRUE(r.status().ok());
}

TEST(Result, HoldsError) {
  Result<int> r = Error(Code::kTimeout, "slow");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kTimeout);
  EXPECT_EQ(r.status().message(), "slow");
}

TEST(Result, WithAddsContextToErrorOnly) {
  Result<int> bad = Result<int>(Error(Code::kIo, "eof")).With("pfn 0x1f2");
  EXPECT_EQ(bad.status().message(), "pfn 0x1f2: eof");
  Result<int> good = Result<int>(7).With("pfn 0x1f2");
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 7);
}

TEST(Result, MoveOnlyValue) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(5);
  ASSERT_TRUE(r.ok());
  std::unique_ptr<int> p = std::move(r).value();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 5);
}

TEST(Result, ArrowAccessesMembers) {
  Result<std::string> r = std::string("abc");
  EXPECT_EQ(r->size(), 3u);
}

Status Fails(Code c) { return c == Code::kOk ? Status() : Error(c, "inner"); }
Result<int> Number(bool ok) {
  if (!ok) return Error(Code::kProtocol, "no number");
  return 10;
}

Status UsesTry(Code c, bool& reached_end) {
  XM_TRY(Fails(c));
  reached_end = true;
  return {};
}

Status UsesTryCtx(Code c) {
  XM_TRY_CTX(Fails(c), "outer");
  return {};
}

Status UsesAssign(bool ok, int& out) {
  XM_ASSIGN_OR_RETURN(int n, Number(ok));
  out = n * 2;
  return {};
}

TEST(Macros, TryReturnsErrorEarly) {
  bool reached = false;
  Status s = UsesTry(Code::kAuth, reached);
  EXPECT_EQ(s.code(), Code::kAuth);
  EXPECT_FALSE(reached);
  reached = false;
  EXPECT_TRUE(UsesTry(Code::kOk, reached).ok());
  EXPECT_TRUE(reached);
}

TEST(Macros, TryCtxAddsContext) {
  Status s = UsesTryCtx(Code::kIntegrity);
  EXPECT_EQ(s.code(), Code::kIntegrity);
  EXPECT_EQ(s.message(), "outer: inner");
  EXPECT_TRUE(UsesTryCtx(Code::kOk).ok());
}

TEST(Macros, AssignOrReturn) {
  int out = 0;
  EXPECT_TRUE(UsesAssign(true, out).ok());
  EXPECT_EQ(out, 20);
  out = 0;
  Status s = UsesAssign(false, out);
  EXPECT_EQ(s.code(), Code::kProtocol);
  EXPECT_EQ(s.message(), "no number");
  EXPECT_EQ(out, 0);
}

}  // namespace
}  // namespace xm
