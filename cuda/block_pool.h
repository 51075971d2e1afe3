#pragma once
// The bookkeeping of the CUDA caching allocator, apart from cudaMalloc so that it can be tested on
// any machine (tests/cuda/host/). Memory is taken from a SegmentSource in segments; a segment is
// cut into blocks, and blocks freed by storages are kept for reuse instead of going back to the
// driver (cudaMalloc and cudaFree cost tens of microseconds and cudaFree synchronises the device).
//
// - Sizes are rounded up to 512 bytes. Requests up to 1 MiB come from 2 MiB segments (the small
//   pool); up to 10 MiB from 20 MiB segments; larger ones from segments of their size rounded up
//   to 2 MiB (the large pool).
// - A request takes the smallest cached block that fits (best fit, then lowest address) and
//   splits off the rest when the rest is worth keeping (any in the small pool, over 1 MiB in the
//   large one). Freed blocks merge with free neighbours of the same segment.
// - Free lists are per stream: a block freed by work on one stream is reused only by that stream,
//   whose queue orders the old use before the new one without any synchronisation.
// - When the source is out of memory, every wholly free cached segment is released and the
//   request retried once; after that it raises a dtrain::Error with the size asked for and the
//   pool's state.
//
//   BlockPool pool(source, "cuda:0");
//   void* p = pool.allocate(1000, stream);   // 1024 bytes from a new 2 MiB segment
//   pool.free(p);                            // cached
//   pool.allocate(900, stream);              // the same block again
//   pool.release_cached();                   // the segment goes back to the source
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>

namespace dtrain::cuda {

inline constexpr size_t kBlockRounding = 512;
inline constexpr size_t kSmallRequest = size_t{1} << 20;       // and below: the small pool
inline constexpr size_t kSmallSegment = size_t{2} << 20;
inline constexpr size_t kMediumRequest = size_t{10} << 20;     // and below: 20 MiB segments
inline constexpr size_t kMediumSegment = size_t{20} << 20;
inline constexpr size_t kLargeSegmentRounding = size_t{2} << 20;
inline constexpr size_t kMinLargeSplitRemainder = size_t{1} << 20;

// Where segments come from: cudaMalloc on a device, or a fake in tests.
class SegmentSource {
 public:
  virtual ~SegmentSource() = default;
  // nullptr when out of memory; other failures raise.
  virtual void* allocate_segment(size_t nbytes) = 0;
  virtual void free_segment(void* base, size_t nbytes) = 0;
  // One line on the memory behind the source, for out-of-memory errors ("12 of 80 GiB free").
  virtual std::string describe_memory() = 0;
};

struct BlockPoolStats {
  int64_t allocated_bytes = 0;
  int64_t reserved_bytes = 0;
  int64_t peak_reserved_bytes = 0;
  int64_t segments = 0;
  int64_t allocations = 0;
  int64_t cache_hits = 0;
  int64_t splits = 0;
  int64_t driver_allocations = 0;
};

class BlockPool {
 public:
  BlockPool(SegmentSource& source, std::string device_name);
  ~BlockPool();
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  // A block of at least nbytes (nbytes > 0) for work on stream.
  void* allocate(size_t nbytes, uintptr_t stream);
  // Returns a block from allocate to its stream's free list; raises on an unknown pointer.
  void free(void* pointer);
  // Gives every wholly free segment back to the source.
  void release_cached();

  BlockPoolStats stats() const;
  // The rounded size of a live block (for tests and diagnostics); raises on an unknown pointer.
  size_t block_size(void* pointer) const;

  static size_t rounded_size(size_t nbytes);
  static size_t segment_size_for(size_t rounded);

 private:
  struct Block {
    uintptr_t address;
    size_t size;
    uintptr_t stream;
    bool small_pool;
    bool free = false;
    Block* previous = nullptr;  // neighbours within the segment
    Block* next = nullptr;
  };
  struct FreeOrder {
    bool operator()(const Block* a, const Block* b) const;
  };
  using FreeSet = std::set<Block*, FreeOrder>;

  FreeSet& free_set(bool small_pool) { return small_pool ? small_free_ : large_free_; }
  Block* find_free(size_t size, uintptr_t stream, bool small_pool);
  Block* new_segment(size_t size, uintptr_t stream, bool small_pool);
  void release_free_segments();
  [[noreturn]] void out_of_memory(size_t requested, size_t segment_size);

  SegmentSource& source_;
  std::string device_name_;
  mutable std::mutex mutex_;
  FreeSet small_free_;
  FreeSet large_free_;
  std::unordered_map<uintptr_t, Block*> live_;        // handed-out blocks by address
  std::map<uintptr_t, Block*> segment_heads_;         // first block of each segment by base address
  std::unordered_map<uintptr_t, size_t> segment_sizes_;
  BlockPoolStats stats_;
};

}  // namespace dtrain::cuda
