#pragma once
// Copies that turn examples into a batch. They work on CPU tensors with plain memcpy: a batch is
// assembled once per step from host data, and row copies are all it needs.
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace dtrain {

// The rows of source (along dim 0) at indices, in that order, as a new contiguous CPU tensor of
// shape [indices.size(), source.shape()[1:]...]. Raises naming any index out of range.
Tensor gather_rows(const Tensor& source, const std::vector<int64_t>& indices);

// Tensors of one shape and dtype stacked along a new leading dimension into a contiguous CPU
// tensor. Raises naming the first tensor whose shape or dtype differs from the first's.
Tensor stack_rows(const std::vector<Tensor>& tensors);

}  // namespace dtrain
