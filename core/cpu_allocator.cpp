#include "core/cpu_allocator.h"

#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/error.h"

namespace dtrain {

namespace {

// 64-byte alignment: a cache line, and enough for any SIMD load.
size_t rounded_size(size_t nbytes) { return (nbytes + 63) / 64 * 64; }

class CachingCpuAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes, Device) override {
    const size_t size = rounded_size(nbytes);
    if (size >= kMinCachedCpuBlock) {
      std::lock_guard<std::mutex> lock(mutex_);
      auto found = free_blocks_.find(size);  // exact sizes: a step asks for the same ones again
      if (found != free_blocks_.end() && !found->second.empty()) {
        void* block = found->second.back();
        found->second.pop_back();
        cached_bytes_ -= size;
        return block;
      }
    }
    void* block = std::aligned_alloc(64, size);
    if (block == nullptr) {
      release();  // the cache may hold what the C library is missing
      block = std::aligned_alloc(64, size);
    }
    if (block == nullptr) fail("out of memory: could not allocate ", nbytes, " bytes on the CPU");
    return block;
  }

  void deallocate(void* block, size_t nbytes, Device) override {
    const size_t size = rounded_size(nbytes);
    if (size >= kMinCachedCpuBlock) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (cached_bytes_ + size <= kMaxCachedCpuBytes) {
        free_blocks_[size].push_back(block);
        cached_bytes_ += size;
        return;
      }
    }
    std::free(block);
  }

  size_t cached_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_bytes_;
  }

  void release() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [size, blocks] : free_blocks_) {
      for (void* block : blocks) std::free(block);
    }
    free_blocks_.clear();
    cached_bytes_ = 0;
  }

 private:
  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_blocks_;  // by rounded size
  size_t cached_bytes_ = 0;
};

CachingCpuAllocator& the_allocator() {
  // Never destroyed: storages in static tensors may be freed after any static destructor ran.
  static auto* allocator = new CachingCpuAllocator();
  return *allocator;
}

}  // namespace

Allocator& cpu_allocator() { return the_allocator(); }
size_t cpu_cached_bytes() { return the_allocator().cached_bytes(); }
void release_cpu_cache() { the_allocator().release(); }

}  // namespace dtrain
