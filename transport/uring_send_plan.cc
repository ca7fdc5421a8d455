#include "transport/uring_send_plan.h"

#include <algorithm>
#include <cassert>

namespace xm {

size_t SendOp::bytes() const {
  size_t n = 0;
  for (const iovec& v : iov) n += v.iov_len;
  return n;
}

void SendOp::Consume(size_t n) {
  size_t i = 0;
  while (n > 0 && i < iov.size()) {
    if (n >= iov[i].iov_len) {
      n -= iov[i].iov_len;
      ++i;
    } else {
      iov[i].iov_base = static_cast<char*>(iov[i].iov_base) + n;
      iov[i].iov_len -= n;
      n = 0;
    }
  }
  assert(n == 0);
  iov.erase(iov.begin(), iov.begin() + static_cast<std::ptrdiff_t>(i));
}

void PlanSends(std::span<const iovec> in, const SendPlanLimits& limits, std::vector<SendOp>* out) {
  const size_t max_iov = std::max<size_t>(limits.max_iov, 1);
  const size_t max_bytes = std::max<size_t>(limits.max_bytes, 1);

  // Merge contiguous neighbours first: guest pages of consecutive pfns usually
  // are, and one large iovec both costs less and qualifies for zero-copy.
  std::vector<iovec> merged;
  merged.reserve(in.size());
  for (const iovec& v : in) {
    if (v.iov_len == 0) continue;
    if (!merged.empty() &&
        static_cast<char*>(merged.back().iov_base) + merged.back().iov_len == static_cast<char*>(v.iov_base)) {
      merged.back().iov_len += v.iov_len;
    } else {
      merged.push_back(v);
    }
  }

  SendOp cur;
  size_t cur_bytes = 0;
  auto flush = [&] {
    if (!cur.iov.empty()) out->push_back(std::move(cur));
    cur = SendOp{};
    cur_bytes = 0;
  };
  for (iovec v : merged) {
    while (v.iov_len > 0) {
      if (cur.iov.size() == max_iov || cur_bytes == max_bytes) flush();
      size_t take = std::min(v.iov_len, max_bytes - cur_bytes);
      cur.iov.push_back(iovec{v.iov_base, take});
      cur_bytes += take;
      v.iov_base = static_cast<char*>(v.iov_base) + take;
      v.iov_len -= take;
    }
  }
  flush();
}

}  // namespace xm
