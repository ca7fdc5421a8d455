// ExpectFlipsNeverYieldAWrongPage: the rule every page encoding must keep under
// corruption, shared by the codec tests. One bit is flipped at each payload
// byte in turn and the page decoded: the decoder (kProtocol) or the page hash
// (kIntegrity) catches it, or the flip was harmless (a match offset moved to an
// identical earlier string) and the page comes out exactly right; never a
// wrong page reported ok. Most flips must be caught.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "migrate/common/page_codec.h"

namespace xm {

inline void ExpectFlipsNeverYieldAWrongPage(const PageDesc& desc, const std::vector<uint8_t>& payload,
                                            const std::vector<std::byte>& page) {
  size_t caught = 0;
  for (size_t at = 0; at < payload.size(); ++at) {
    std::vector<uint8_t> bad = payload;
    bad[at] ^= static_cast<uint8_t>(1u << (at % 8));
    std::vector<std::byte> out(page.size());
    Status st = DecodePage(desc, bad, out.data());
    if (st.ok()) {
      ASSERT_EQ(out, page) << "flip at " << at << " decoded to a different page without an error";
    } else {
      ASSERT_TRUE(st.code() == Code::kIntegrity || st.code() == Code::kProtocol) << at << ": " << st.ToString();
      ++caught;
    }
  }
  EXPECT_GT(caught, payload.size() / 2);
}

}  // namespace xm
