#pragma once
// The loop under every CPU elementwise kernel: walks N operands of one logical shape with
// arbitrary (byte) strides, after dropping size-1 dims and merging dims that are contiguous in
// every operand. The innermost run is handed to a callback, which can test for unit or zero
// strides and take a vectorisable path. Large loops are split across OpenMP threads by
// element ranges, so the result never depends on the thread count.
#include <omp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <exception>
#include <cstdint>
#include <cstddef>

#include "core/error.h"
#include "core/shape.h"
#include "core/tensor.h"

namespace dtrain::cpu {

inline constexpr int kMaxLoopDims = 16;
inline constexpr int64_t kParallelGrain = 32768;  // elements below which a loop stays serial

// Runs body(begin, end) over [0, count) in parallel chunks of at least grain.
template <typename Body>
void parallel_for(int64_t count, int64_t grain, Body&& body) {
  if (count <= 0) return;
  int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  int64_t chunks = std::min<int64_t>(threads, (count + grain - 1) / std::max<int64_t>(grain, 1));
  if (chunks <= 1) {
    body(int64_t{0}, count);
    return;
  }
  // An exception must not leave an OpenMP region (that terminates the process): the first one
  // is kept and rethrown on the calling thread.
  std::exception_ptr first_error;
  std::atomic<bool> failed{false};
#pragma omp parallel for num_threads(static_cast<int>(chunks)) schedule(static)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    if (failed.load(std::memory_order_relaxed)) continue;
    try {
      body(count * chunk / chunks, count * (chunk + 1) / chunks);
    } catch (...) {
#pragma omp critical(dtrain_parallel_for_error)
      if (!failed.exchange(true)) first_error = std::current_exception();
    }
  }
  if (first_error) std::rethrow_exception(first_error);
}

template <size_t N>
struct LoopPlan {
  int ndim = 0;  // index 0 is the innermost dim
  int64_t sizes[kMaxLoopDims];
  int64_t strides[N][kMaxLoopDims];  // bytes
};

// shape: the common logical shape; strides: each operand's element strides; element_sizes: bytes.
template <size_t N>
LoopPlan<N> plan_loop(const Shape& shape, const std::array<const Strides*, N>& strides,
                      const std::array<int64_t, N>& element_sizes) {
  LoopPlan<N> plan;
  for (size_t d = shape.size(); d-- > 0;) {
    int64_t size = shape[d];
    if (size == 1) continue;
    if (plan.ndim > 0) {
      bool mergeable = true;
      int inner = plan.ndim - 1;
      for (size_t k = 0; k < N; ++k) {
        if ((*strides[k])[d] * element_sizes[k] != plan.strides[k][inner] * plan.sizes[inner]) mergeable = false;
      }
      if (mergeable) {
        plan.sizes[inner] *= size;
        continue;
      }
    }
    if (plan.ndim == kMaxLoopDims) fail("tensor loops support at most ", kMaxLoopDims, " non-trivial dimensions");
    plan.sizes[plan.ndim] = size;
    for (size_t k = 0; k < N; ++k) plan.strides[k][plan.ndim] = (*strides[k])[d] * element_sizes[k];
    ++plan.ndim;
  }
  if (plan.ndim == 0) {  // a single element
    plan.ndim = 1;
    plan.sizes[0] = 1;
    for (size_t k = 0; k < N; ++k) plan.strides[k][0] = 0;
  }
  return plan;
}

// inner(std::array<char*, N> pointers, std::array<int64_t, N> byte_strides, int64_t count)
template <size_t N, typename Inner>
void run_plan_range(const LoopPlan<N>& plan, const std::array<char*, N>& bases, int64_t begin, int64_t end,
                    Inner& inner) {
  int64_t index[kMaxLoopDims];
  std::array<char*, N> pointers = bases;
  int64_t remainder = begin;
  for (int d = 0; d < plan.ndim; ++d) {
    index[d] = remainder % plan.sizes[d];
    remainder /= plan.sizes[d];
    for (size_t k = 0; k < N; ++k) pointers[k] += index[d] * plan.strides[k][d];
  }
  std::array<int64_t, N> inner_strides;
  for (size_t k = 0; k < N; ++k) inner_strides[k] = plan.strides[k][0];
  int64_t position = begin;
  while (position < end) {
    int64_t count = std::min(plan.sizes[0] - index[0], end - position);
    inner(pointers, inner_strides, count);
    position += count;
    if (position >= end) break;
    // Step to the start of the next inner run, carrying into outer dims.
    // The row is finished: back to its start, then one step in the next outer dim.
    for (size_t k = 0; k < N; ++k) pointers[k] -= index[0] * plan.strides[k][0];
    index[0] = 0;
    for (int d = 1; d < plan.ndim; ++d) {
      ++index[d];
      for (size_t k = 0; k < N; ++k) pointers[k] += plan.strides[k][d];
      if (index[d] < plan.sizes[d]) break;
      for (size_t k = 0; k < N; ++k) pointers[k] -= plan.sizes[d] * plan.strides[k][d];
      index[d] = 0;
    }
  }
}

// Walks all elements of shape over the operands (tensors' data pointers and strides).
template <size_t N, typename Inner>
void strided_loop(const Shape& shape, const std::array<const Tensor*, N>& operands, Inner&& inner,
                  int64_t grain = kParallelGrain) {
  int64_t count = shape.numel();
  if (count == 0) return;
  std::array<const Strides*, N> strides;
  std::array<int64_t, N> element_sizes;
  std::array<char*, N> bases;
  for (size_t k = 0; k < N; ++k) {
    strides[k] = &operands[k]->strides();
    element_sizes[k] = static_cast<int64_t>(operands[k]->element_size());
    bases[k] = static_cast<char*>(operands[k]->data());
  }
  LoopPlan<N> plan = plan_loop<N>(shape, strides, element_sizes);
  parallel_for(count, grain, [&](int64_t begin, int64_t end) { run_plan_range<N>(plan, bases, begin, end, inner); });
}

}  // namespace dtrain::cpu
