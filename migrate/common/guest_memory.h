// Whole-guest memory walks both sides need: the COMMIT digest, rehashing memory
// against the page hashes sent or received (`--verify full`), and the test
// hook that dumps memory to a file. The walks read guest memory as it is: call
// them while the guest is paused (source) or not yet resumed (destination).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dirtylog/backend.h"
#include "transport/messages.h"

namespace xm {

// Calls fn(pfn, page) for every populated pfn in order, mapping in batches where
// the backend has no direct mapping; stops at the first error fn returns.
Status ForEachPage(Backend& backend, const std::function<Status(uint64_t pfn, const std::byte* page)>& fn);

// XXH3-128 over the u64 page hashes of every populated pfn, in pfn order (PROTOCOL.md COMMIT).
Digest128 MemoryDigest(const GuestShape& shape, std::span<const uint64_t> page_hashes);

// Rehashes every populated page and compares it with `page_hashes`; kIntegrity
// naming the first pfn that differs (and how many do), with `why` saying what
// that means. `*differing`, when given, receives the count (0 on success).
Status CheckMemory(Backend& backend, std::span<const uint64_t> page_hashes, std::string_view why,
                   uint64_t* differing = nullptr);

// Writes every populated page to `path` at its pfn's offset (test hook).
Status DumpMemory(Backend& backend, const std::string& path);

}  // namespace xm
