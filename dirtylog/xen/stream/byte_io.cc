#include "dirtylog/xen/stream/byte_io.h"

#include <climits>
#include <cerrno>
#include <cstring>

namespace xm::xen {

Status FdSink::Write(std::span<const iovec> iov) {
  // writev() takes at most IOV_MAX entries and may stop anywhere; walk a copy.
  std::vector<iovec> left(iov.begin(), iov.end());
  size_t first = 0;
  while (first < left.size()) {
    if (left[first].iov_len == 0) {
      ++first;
      continue;
    }
    int n = static_cast<int>(std::min<size_t>(left.size() - first, IOV_MAX));
    ssize_t w = ::writev(fd_, left.data() + first, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(what_ + ": write at offset " + std::to_string(written_), errno);
    }
    written_ += static_cast<uint64_t>(w);
    size_t done = static_cast<size_t>(w);
    while (done > 0 && first < left.size()) {
      size_t take = std::min(done, left[first].iov_len);
      left[first].iov_base = static_cast<char*>(left[first].iov_base) + take;
      left[first].iov_len -= take;
      done -= take;
      if (left[first].iov_len == 0) ++first;
    }
  }
  return {};
}

Status VectorSink::Write(std::span<const iovec> iov) {
  for (const iovec& v : iov) {
    const auto* p = static_cast<const uint8_t*>(v.iov_base);
    bytes_.insert(bytes_.end(), p, p + v.iov_len);
    written_ += v.iov_len;
  }
  return {};
}

Status FdSource::ReadExact(void* out, size_t len) {
  auto* p = static_cast<uint8_t*>(out);
  size_t got = 0;
  while (got < len) {
    ssize_t r = ::read(fd_, p + got, len - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(what_ + ": read at offset " + std::to_string(offset_ + got), errno);
    }
    if (r == 0)
      return Error(Code::kProtocol, what_ + ": stream truncated at offset " + std::to_string(offset_ + got) +
                                        " (wanted " + std::to_string(len - got) + " more bytes)");
    got += static_cast<size_t>(r);
  }
  offset_ += len;
  return {};
}

Status SpanSource::ReadExact(void* out, size_t len) {
  if (remaining() < len)
    return Error(Code::kProtocol, "stream truncated at offset " + std::to_string(offset_) + " (wanted " +
                                      std::to_string(len) + " bytes, " + std::to_string(remaining()) + " left)");
  if (len == 0) return {};  // memcpy with a null pointer is undefined even for 0 bytes
  std::memcpy(out, bytes_.data() + offset_, len);
  offset_ += len;
  return {};
}

}  // namespace xm::xen
