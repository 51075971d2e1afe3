#pragma once
// Kernel-internal views: the same storage seen with another shape or strides, so that reduction,
// softmax and index kernels can hand strided_loop one operand per output element (the start of
// that element's row) instead of walking dims by hand. Never escapes a kernel; no autograd.
#include <cstdint>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace dtrain::cpu {

inline Tensor restrided(const Tensor& tensor, Shape shape, Strides strides) {
  return Tensor(std::make_shared<TensorImpl>(tensor.storage(), std::move(shape), std::move(strides),
                                             tensor.storage_offset(), tensor.dtype()));
}

// tensor with the sizes of dims set to 1, strides kept: element i is where i's row along dims starts.
inline Tensor with_sizes_one(const Tensor& tensor, const std::vector<int64_t>& dims) {
  Shape shape = tensor.shape();
  for (int64_t dim : dims) shape[dim] = 1;
  return restrided(tensor, std::move(shape), tensor.strides());
}

// True when dim is (one of) the input's innermost dims: its stride is no larger than any other
// dim that has more than one element. Kernels then walk rows; otherwise they walk columns.
inline bool is_innermost_dim(const Tensor& tensor, int64_t dim) {
  int64_t dim_stride = tensor.stride(dim);
  for (int64_t d = 0; d < tensor.dim(); ++d) {
    if (d == dim || tensor.size(d) <= 1 || tensor.stride(d) == 0) continue;
    if (tensor.stride(d) < dim_stride) return false;
  }
  return true;
}

}  // namespace dtrain::cpu
