#include "migrate/source/delta_cache.h"

#include <cstring>
#include <iterator>

namespace xm {

DeltaCache::DeltaCache(uint64_t capacity_bytes, uint32_t shards) : capacity_pages_(capacity_bytes / kBytesPerPage) {
  shards_.resize(shards);
  for (auto& s : shards_) {
    s = std::make_unique<Shard>();
    s->capacity = capacity_pages_ / shards;
  }
}

bool DeltaCache::Get(uint64_t pfn, std::byte* out) {
  if (!enabled()) return false;
  Shard& s = ShardFor(pfn);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(pfn);
  if (it == s.map.end()) return false;
  s.lru.splice(s.lru.begin(), s.lru, it->second.it);
  std::memcpy(out, it->second.data.get(), 4096);
  return true;
}

void DeltaCache::Put(uint64_t pfn, const std::byte* page) {
  if (!enabled()) return;
  Shard& s = ShardFor(pfn);
  if (s.capacity == 0) return;
  std::lock_guard lock(s.mu);
  auto it = s.map.find(pfn);
  if (it != s.map.end()) {
    s.lru.splice(s.lru.begin(), s.lru, it->second.it);
    std::memcpy(it->second.data.get(), page, 4096);
    return;
  }
  std::unique_ptr<std::byte[]> data;
  if (s.map.size() >= s.capacity) {
    // Reuse the evicted page's buffer.
    uint64_t victim = s.lru.back();
    s.lru.pop_back();
    auto v = s.map.find(victim);
    data = std::move(v->second.data);
    s.map.erase(v);
  } else {
    data = std::make_unique<std::byte[]>(4096);
  }
  std::memcpy(data.get(), page, 4096);
  s.lru.push_back(pfn);
  s.map.emplace(pfn, Shard::Entry{std::prev(s.lru.end()), std::move(data)});
}

void DeltaCache::Drop(uint64_t pfn) {
  if (!enabled()) return;
  Shard& s = ShardFor(pfn);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(pfn);
  if (it == s.map.end()) return;
  s.lru.erase(it->second.it);
  s.map.erase(it);
}

uint64_t DeltaCache::pages() const {
  uint64_t n = 0;
  for (const auto& s : shards_) {
    std::lock_guard lock(s->mu);
    n += s->map.size();
  }
  return n;
}

}  // namespace xm
