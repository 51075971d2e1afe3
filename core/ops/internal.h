#pragma once
// Helpers shared by the op files, not part of the public API.
#include <cstdint>

#include "core/backend.h"
#include "core/tensor.h"

namespace dtrain::internal {

// A tensor sharing x's storage with the given geometry (no autograd history).
Tensor make_view(const Tensor& x, Shape shape, Strides strides, int64_t offset);
// out = op(a, b) through the kernel table with broadcasting and promotion, never recorded:
// the backward formulas use it for the fused helper ops.
Tensor apply_binary(BinaryOp op, const Tensor& a, const Tensor& b, const char* name);
// out = op(x) through the kernel table, never recorded.
Tensor apply_unary(UnaryOp op, const Tensor& x, double parameter = 0.0);
// Raises unless both tensors are on one device, naming the op.
void check_same_device(const Tensor& a, const Tensor& b, const char* op);

}  // namespace dtrain::internal
