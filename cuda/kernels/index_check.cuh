#pragma once
// The bounds check of the index kernels (cuda/kernels/index_kernels.cu, index_add_rows.cu). A
// kernel cannot raise, so a bad index is recorded in a small device record (the first thread to
// see one stores it; that element is skipped, nothing is read or written out of bounds) and the
// host reads the record back after the kernel and raises with the CPU's message. That read waits
// for the kernel: a checked index op synchronises its stream. A kernel given no record (nullptr:
// the caller validated the index before, IndexBounds::Validated) still skips a bad index.
#include <cstdint>

#include "core/error.h"
#include "core/profiler_recorder.h"
#include "cuda/caching_allocator.h"
#include "cuda/check.h"
#include "cuda/kernels/launch.cuh"

namespace dtrain::cuda {

struct IndexError {
  int found;
  int64_t position;
};

__device__ inline bool check_position(IndexError* error, int64_t position, int64_t size) {
  if (position >= 0 && position < size) return true;
  if (error != nullptr && atomicCAS(&error->found, 0, 1) == 0) error->position = position;
  return false;
}

// The device record of one launch, read back (and raised) by finish().
class IndexCheck {
 public:
  IndexCheck(const LaunchContext& context, int device) : context_(context), buffer_(device, sizeof(IndexError)) {
    DTRAIN_CUDA_CHECK(cudaMemsetAsync(buffer_.data(), 0, sizeof(IndexError), context.stream));
  }
  IndexError* record() const { return static_cast<IndexError*>(buffer_.data()); }
  void finish(const char* op, int64_t dim, int64_t size) {
    IndexError error{};
    DTRAIN_CUDA_CHECK(cudaMemcpyAsync(&error, buffer_.data(), sizeof(error), cudaMemcpyDeviceToHost, context_.stream));
    profiler::detail::host_synchronization("index bounds check");
    DTRAIN_CUDA_CHECK(cudaStreamSynchronize(context_.stream));
    if (error.found != 0) fail(op, ": index ", error.position, " is out of bounds for dimension ", dim, " with size ", size);
  }

 private:
  const LaunchContext& context_;
  ScratchBuffer buffer_;
};

}  // namespace dtrain::cuda
