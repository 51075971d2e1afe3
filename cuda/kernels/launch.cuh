#pragma once
// What every kernel family needs to launch: the device and stream to run on, and grid sizes.
#include <algorithm>
#include <cstdint>

#include "core/tensor.h"
#include "cuda/check.h"
#include "cuda/stream.h"

namespace dtrain::cuda {

inline constexpr int kThreads = 256;
// Grids are capped; kernels loop with a grid stride over what is left.
inline constexpr int64_t kMaxBlocks = int64_t{1} << 20;

// The tensor's device made current, and its current stream.
struct LaunchContext {
  explicit LaunchContext(Device device) : guard(device.index), stream(current_stream(device.index)) {}
  DeviceGuard guard;
  cudaStream_t stream;
};

inline unsigned int blocks_for(int64_t items, int threads = kThreads) {
  int64_t blocks = (items + threads - 1) / threads;
  return static_cast<unsigned int>(std::clamp<int64_t>(blocks, 1, kMaxBlocks));
}

// The first thread index and the grid stride, in 64 bits.
__device__ inline int64_t global_thread() { return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ inline int64_t grid_stride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

}  // namespace dtrain::cuda
