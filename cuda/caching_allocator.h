#pragma once
// The CUDA allocator that core's Storage uses (registered with core/allocator.h when the backend
// loads): one BlockPool (cuda/block_pool.h) per device over cudaMalloc, blocks handed out for the
// device's current stream. Byte accounting per tag stays with Storage, as on the CPU.
#include <cstddef>

#include "core/allocator.h"
#include "cuda/block_pool.h"

namespace dtrain::cuda {

class CachingAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes, Device device) override;
  void deallocate(void* pointer, size_t nbytes, Device device) override;
  BlockPoolStats stats(int device);
  void empty_cache();  // every device
};

CachingAllocator& caching_allocator();

// Scratch bytes for one operation (index checks, pointer arrays), from the caching allocator and
// returned to it when the scope ends: later work on the same stream runs after this use.
class ScratchBuffer {
 public:
  ScratchBuffer(int device, size_t nbytes);
  ~ScratchBuffer();
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  void* data() const { return data_; }

 private:
  int device_;
  size_t nbytes_;
  void* data_;
};

}  // namespace dtrain::cuda
