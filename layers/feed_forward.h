#pragma once
// The GPT-2 feed-forward map proj(gelu_tanh(fc(x))) as one autograd node, so that its backward can
// hand GELU's gradient and fc's bias gradient to the GEMM that computes the gradient of fc's output
// (Backend::linear_input_gradient: cuBLASLt's DGELU_BGRAD epilogue on CUDA).
#include "core/tensor.h"

namespace dtrain {

// input [..., in], fc_weight [hidden, in], fc_bias [hidden], proj_weight [out, hidden],
// proj_bias [out] (either bias may be undefined) -> [..., out]: the values and gradients of
// linear(gelu(linear(input, fc_weight, fc_bias), Tanh), proj_weight, proj_bias). Forward: fc's GEMM
// with bias and GELU (keeping the value before the GELU), proj's GEMM with bias. Backward: proj's
// weight and bias gradients (one GEMM on CUDA), proj's input gradient through the GELU with fc's
// bias gradient (one GEMM on CUDA), fc's input and weight gradients. The CPU runs the kernels that
// the two linear nodes would, so its results are theirs, bit for bit. Floating dtypes.
Tensor feed_forward_gelu(const Tensor& input, const Tensor& fc_weight, const Tensor& fc_bias, const Tensor& proj_weight,
                         const Tensor& proj_bias);

}  // namespace dtrain
