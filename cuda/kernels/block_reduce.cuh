#pragma once
// Combining values across a block: a fixed shuffle tree inside each warp, then across the warps,
// so the result depends only on which thread held which values (reproducible run to run).
#include <cuda_runtime.h>

#include <cstdint>
#include <limits>
#include <type_traits>

namespace dtrain::cuda {

struct SumOp {
  template <typename A> __device__ static A identity() { return A(0); }
  template <typename A> __device__ static A combine(A total, A value) { return total + value; }
};

// NaN wins, as on the CPU (core/cpu/lane_accumulator.h).
struct MaxOp {
  template <typename A> __device__ static A identity() {
    if constexpr (std::numeric_limits<A>::has_infinity) return -std::numeric_limits<A>::infinity();
    else return std::numeric_limits<A>::lowest();
  }
  template <typename A> __device__ static A combine(A best, A value) { return (value > best || value != value) ? value : best; }
};

struct MinOp {
  template <typename A> __device__ static A identity() {
    if constexpr (std::numeric_limits<A>::has_infinity) return std::numeric_limits<A>::infinity();
    else return std::numeric_limits<A>::max();
  }
  template <typename A> __device__ static A combine(A best, A value) { return (value < best || value != value) ? value : best; }
};

template <typename A>
__device__ inline A shuffle_down(A value, int offset) {
  if constexpr (std::is_same_v<A, int64_t>) {
    return static_cast<int64_t>(__shfl_down_sync(0xffffffffu, static_cast<long long>(value), offset));
  } else {
    return __shfl_down_sync(0xffffffffu, value, offset);
  }
}

// The combination of every thread's value, returned to every thread. blockDim.x must be a
// multiple of 32 and at most 1024; shared holds 32 values. Every thread of the block must call.
template <typename Op, typename A>
__device__ A block_all_reduce(A value, A* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) value = Op::combine(value, shuffle_down(value, offset));
  __syncthreads();  // shared may still be read from a previous call
  if (lane == 0) shared[warp] = value;
  __syncthreads();
  if (warp == 0) {
    value = lane < warps ? shared[lane] : Op::template identity<A>();
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) value = Op::combine(value, shuffle_down(value, offset));
    if (lane == 0) shared[0] = value;
  }
  __syncthreads();
  return shared[0];
}

}  // namespace dtrain::cuda
