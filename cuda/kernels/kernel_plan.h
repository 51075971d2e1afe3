#pragma once
// How kernels address strided operands. A plan covers N operands of one logical shape: size-1
// dims dropped, dims that are contiguous in every operand merged (as the CPU's strided_loop), so a
// permuted or sliced tensor usually needs one or two dims. Element i's byte offset in operand k is
// found by peeling i's index in each dim, innermost first.
#include <array>
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "core/host_device.h"
#include "core/tensor.h"

namespace dtrain::cuda {

inline constexpr int kMaxPlanDims = 16;

template <int N>
struct OffsetPlan {
  int ndim = 0;                           // index 0 is the innermost dim
  int64_t sizes[kMaxPlanDims] = {};
  int64_t strides[N][kMaxPlanDims] = {};  // bytes

  DTRAIN_HOST_DEVICE void offsets(int64_t linear, int64_t (&out)[N]) const {
    for (int k = 0; k < N; ++k) out[k] = 0;
    for (int d = 0; d < ndim; ++d) {
      const int64_t size = sizes[d];
      const int64_t index = linear % size;
      linear /= size;
      for (int k = 0; k < N; ++k) out[k] += index * strides[k][d];
    }
  }
};

// The plan for walking shape over operands (each with shape's dims, any strides; broadcast = 0).
template <int N>
OffsetPlan<N> make_plan(const Shape& shape, const std::array<const Tensor*, N>& operands) {
  OffsetPlan<N> plan;
  for (size_t d = shape.size(); d-- > 0;) {
    const int64_t size = shape[d];
    if (size == 1) continue;
    if (plan.ndim > 0) {
      bool mergeable = true;
      const int inner = plan.ndim - 1;
      for (int k = 0; k < N; ++k) {
        const int64_t stride = operands[k]->strides()[d] * static_cast<int64_t>(operands[k]->element_size());
        if (stride != plan.strides[k][inner] * plan.sizes[inner]) mergeable = false;
      }
      if (mergeable) {
        plan.sizes[inner] *= size;
        continue;
      }
    }
    if (plan.ndim == kMaxPlanDims) fail("CUDA kernels support at most ", kMaxPlanDims, " non-trivial dimensions, got shape ", shape);
    plan.sizes[plan.ndim] = size;
    for (int k = 0; k < N; ++k) {
      plan.strides[k][plan.ndim] = operands[k]->strides()[d] * static_cast<int64_t>(operands[k]->element_size());
    }
    ++plan.ndim;
  }
  return plan;  // ndim 0: a single element at offset 0
}

}  // namespace dtrain::cuda
