// DeltaCache: the last version sent of recently re-dirtied pages, so their next
// version can go as a small XOR delta. Bounded in bytes; the least recently used
// page leaves first. New pages enter at the cold end and move to the hot end
// only when used: a guest cycling through more hot pages than fit would
// otherwise evict every page just before it is needed again (plain LRU's worst
// case, and exactly what a hot set larger than the cache does each round).
// Sharded by pfn region so workers on different regions rarely contend.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace xm {

class DeltaCache {
 public:
  // Each cached page costs its 4 KiB plus list and hash-map bookkeeping; the
  // capacity counts both, so --delta-cache is what the cache really uses.
  static constexpr uint64_t kBytesPerPage = 4096 + 96;

  // `capacity_bytes` = 0 disables the cache.
  explicit DeltaCache(uint64_t capacity_bytes, uint32_t shards = 16);
  bool enabled() const { return capacity_pages_ > 0; }

  // Copies the cached base of `pfn` into `out` (one page); false when not cached.
  bool Get(uint64_t pfn, std::byte* out);
  // Remembers `page` as the last version of `pfn` sent.
  void Put(uint64_t pfn, const std::byte* page);
  // Forgets `pfn` (its last version went without being cached).
  void Drop(uint64_t pfn);

  uint64_t pages() const;


 private:
  struct Shard {
    std::mutex mu;
    std::list<uint64_t> lru;  // front = most recent
    struct Entry {
      std::list<uint64_t>::iterator it;
      std::unique_ptr<std::byte[]> data;
    };
    std::unordered_map<uint64_t, Entry> map;
    uint64_t capacity = 0;
  };
  Shard& ShardFor(uint64_t pfn) { return *shards_[(pfn >> 9) % shards_.size()]; }

  uint64_t capacity_pages_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace xm
