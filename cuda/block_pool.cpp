#include "cuda/block_pool.h"

#include <cstdio>
#include <tuple>
#include <utility>
#include <vector>

#include "core/error.h"

namespace dtrain::cuda {
namespace {

std::string bytes_text(int64_t nbytes) {
  char text[96];
  std::snprintf(text, sizeof(text), "%lld bytes (%.2f MiB)", static_cast<long long>(nbytes),
                static_cast<double>(nbytes) / (1024.0 * 1024.0));
  return text;
}

}  // namespace

bool BlockPool::FreeOrder::operator()(const Block* a, const Block* b) const {
  return std::tie(a->stream, a->size, a->address) < std::tie(b->stream, b->size, b->address);
}

BlockPool::BlockPool(SegmentSource& source, std::string device_name)
    : source_(source), device_name_(std::move(device_name)) {}

BlockPool::~BlockPool() {
  // Bookkeeping only: the source may already be gone (the driver at exit), so segments are not returned.
  for (auto& [base, head] : segment_heads_) {
    for (Block* block = head; block != nullptr;) {
      Block* next = block->next;
      delete block;
      block = next;
    }
  }
}

size_t BlockPool::rounded_size(size_t nbytes) {
  if (nbytes == 0) return kBlockRounding;
  return (nbytes + kBlockRounding - 1) / kBlockRounding * kBlockRounding;
}

size_t BlockPool::segment_size_for(size_t rounded) {
  if (rounded <= kSmallRequest) return kSmallSegment;
  if (rounded <= kMediumRequest) return kMediumSegment;
  return (rounded + kLargeSegmentRounding - 1) / kLargeSegmentRounding * kLargeSegmentRounding;
}

BlockPool::Block* BlockPool::find_free(size_t size, uintptr_t stream, bool small_pool) {
  FreeSet& set = free_set(small_pool);
  Block key{0, size, stream, small_pool};
  auto found = set.lower_bound(&key);
  if (found == set.end() || (*found)->stream != stream) return nullptr;
  Block* block = *found;
  set.erase(found);
  return block;
}

BlockPool::Block* BlockPool::new_segment(size_t size, uintptr_t stream, bool small_pool) {
  const size_t segment_size = segment_size_for(size);
  void* base = source_.allocate_segment(segment_size);
  if (base == nullptr) {
    release_free_segments();  // cached segments may hold what the device is missing
    base = source_.allocate_segment(segment_size);
  }
  if (base == nullptr) out_of_memory(size, segment_size);
  auto address = reinterpret_cast<uintptr_t>(base);
  auto* block = new Block{address, segment_size, stream, small_pool};
  segment_heads_[address] = block;
  segment_sizes_[address] = segment_size;
  stats_.reserved_bytes += static_cast<int64_t>(segment_size);
  if (stats_.reserved_bytes > stats_.peak_reserved_bytes) stats_.peak_reserved_bytes = stats_.reserved_bytes;
  ++stats_.segments;
  ++stats_.driver_allocations;
  return block;
}

void* BlockPool::allocate(size_t nbytes, uintptr_t stream) {
  const size_t size = rounded_size(nbytes);
  const bool small_pool = size <= kSmallRequest;
  std::lock_guard<std::mutex> lock(mutex_);
  Block* block = find_free(size, stream, small_pool);
  if (block != nullptr) ++stats_.cache_hits;
  else block = new_segment(size, stream, small_pool);

  const size_t remainder = block->size - size;
  const bool worth_splitting = small_pool ? remainder >= kBlockRounding : remainder > kMinLargeSplitRemainder;
  if (worth_splitting) {
    auto* rest = new Block{block->address + size, remainder, stream, small_pool};
    rest->free = true;
    rest->previous = block;
    rest->next = block->next;
    if (block->next != nullptr) block->next->previous = rest;
    block->next = rest;
    block->size = size;
    free_set(small_pool).insert(rest);
    ++stats_.splits;
  }
  block->free = false;
  live_[block->address] = block;
  stats_.allocated_bytes += static_cast<int64_t>(block->size);
  ++stats_.allocations;
  return reinterpret_cast<void*>(block->address);
}

void BlockPool::free(void* pointer) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = live_.find(reinterpret_cast<uintptr_t>(pointer));
  if (found == live_.end()) {
    fail("caching allocator on ", device_name_, ": free of pointer ", pointer, ", which it did not hand out (or freed twice)");
  }
  Block* block = found->second;
  live_.erase(found);
  stats_.allocated_bytes -= static_cast<int64_t>(block->size);
  block->free = true;
  FreeSet& set = free_set(block->small_pool);
  if (Block* next = block->next; next != nullptr && next->free) {
    set.erase(next);
    block->size += next->size;
    block->next = next->next;
    if (next->next != nullptr) next->next->previous = block;
    delete next;
  }
  if (Block* previous = block->previous; previous != nullptr && previous->free) {
    set.erase(previous);  // its size changes: take it out before the set's order does
    previous->size += block->size;
    previous->next = block->next;
    if (block->next != nullptr) block->next->previous = previous;
    delete block;
    block = previous;
  }
  set.insert(block);
}

void BlockPool::release_free_segments() {
  std::vector<uintptr_t> released;
  for (auto& [base, head] : segment_heads_) {
    if (head->free && head->next == nullptr && head->size == segment_sizes_[base]) {
      free_set(head->small_pool).erase(head);
      source_.free_segment(reinterpret_cast<void*>(base), head->size);
      stats_.reserved_bytes -= static_cast<int64_t>(head->size);
      --stats_.segments;
      delete head;
      released.push_back(base);
    }
  }
  for (uintptr_t base : released) {
    segment_heads_.erase(base);
    segment_sizes_.erase(base);
  }
}

void BlockPool::release_cached() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_free_segments();
}

BlockPoolStats BlockPool::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

size_t BlockPool::block_size(void* pointer) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = live_.find(reinterpret_cast<uintptr_t>(pointer));
  if (found == live_.end()) fail("caching allocator on ", device_name_, ": pointer ", pointer, " is not a live block");
  return found->second->size;
}

void BlockPool::out_of_memory(size_t requested, size_t segment_size) {
  const int64_t cached = stats_.reserved_bytes - stats_.allocated_bytes;
  fail("CUDA out of memory on ", device_name_, ": tried to allocate ", bytes_text(static_cast<int64_t>(requested)),
       " (a new segment of ", bytes_text(static_cast<int64_t>(segment_size)), "); the caching allocator holds ",
       bytes_text(stats_.reserved_bytes), " in ", stats_.segments, " segments: ", bytes_text(stats_.allocated_bytes),
       " allocated to tensors, ", bytes_text(cached),
       " cached in partly used segments (wholly free ones were released and the request retried); ", source_.describe_memory());
}

}  // namespace dtrain::cuda
