// Byte sinks and sources for Xen streams: where a stream writer puts its bytes
// (a file, a pipe into libxl's restore, memory in tests) and where a reader
// takes them from. Writes are scatter-gather so a PAGE_DATA record goes out in
// one writev() straight from guest memory, without copying pages.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"

namespace xm::xen {

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  // Writes all of `iov`, in order, or fails.
  virtual Status Write(std::span<const iovec> iov) = 0;
  Status Write(const void* data, size_t len) {
    iovec v{const_cast<void*>(data), len};
    return Write(std::span<const iovec>(&v, 1));
  }
  // Bytes accepted so far.
  uint64_t written() const { return written_; }

 protected:
  uint64_t written_ = 0;
};

// Writes to a file descriptor (file, pipe, socket); loops over short writes.
class FdSink final : public ByteSink {
 public:
  // `what` names the destination in errors ("xen stream file /tmp/x").
  FdSink(int fd, std::string what) : fd_(fd), what_(std::move(what)) {}
  using ByteSink::Write;
  Status Write(std::span<const iovec> iov) override;

 private:
  int fd_;
  std::string what_;
};

class VectorSink final : public ByteSink {
 public:
  using ByteSink::Write;
  Status Write(std::span<const iovec> iov) override;
  const std::vector<uint8_t>& bytes() const { return bytes_; }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads exactly `len` bytes or fails (a short stream is kProtocol "truncated").
  virtual Status ReadExact(void* out, size_t len) = 0;
  // Offset of the next byte, for error messages.
  uint64_t offset() const { return offset_; }

 protected:
  uint64_t offset_ = 0;
};

class FdSource final : public ByteSource {
 public:
  FdSource(int fd, std::string what) : fd_(fd), what_(std::move(what)) {}
  Status ReadExact(void* out, size_t len) override;

 private:
  int fd_;
  std::string what_;
};

class SpanSource final : public ByteSource {
 public:
  explicit SpanSource(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  Status ReadExact(void* out, size_t len) override;
  size_t remaining() const { return bytes_.size() - static_cast<size_t>(offset_); }

 private:
  std::span<const uint8_t> bytes_;
};

}  // namespace xm::xen
