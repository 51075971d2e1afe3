// linear_backward_from_kernels: Backend::linear_backward as the kernels layers/linear.cpp ran
// before the entry existed (so the CPU's gradients did not change by a bit);
// linear_input_gradient_from_kernels: the same kernels for Backend::linear_input_gradient.
#include "core/backend.h"
#include "core/grad_mode.h"
#include "core/ops/factory.h"
#include "core/ops/view.h"

namespace dtrain {

void linear_backward_from_kernels(Backend& kernels, const Tensor& grad_out, const Tensor& rows, const Tensor& weight,
                                  const Tensor& pre_activation, LinearActivation activation, Tensor& grad_rows,
                                  Tensor& grad_weight, Tensor& grad_bias) {
  NoGradGuard no_grad;  // the views below are kernel plumbing, never part of a graph
  Tensor grad_pre = grad_out;
  if (activation == LinearActivation::GeluTanh) {
    grad_pre = empty(pre_activation.shape(), {.dtype = pre_activation.dtype(), .device = pre_activation.device()});
    kernels.binary(BinaryOp::GeluTanhBackward, pre_activation, grad_out, grad_pre);
  }
  if (grad_rows.defined()) kernels.matmul(grad_pre, weight, grad_rows);
  if (grad_weight.defined()) kernels.matmul(transpose(grad_pre, 0, 1), rows, grad_weight);
  if (grad_bias.defined()) {
    Tensor column_sums = grad_bias.view({1, grad_bias.numel()});  // reduce keeps the reduced dim as size 1
    kernels.reduce(ReductionKind::Sum, grad_pre, {0}, column_sums);
  }
}

void linear_input_gradient_from_kernels(Backend& kernels, const Tensor& grad_out, const Tensor& weight,
                                        const Tensor& pre_activation, LinearActivation activation, Tensor& grad_pre,
                                        Tensor& grad_pre_sums) {
  NoGradGuard no_grad;
  // The product rounded to the dtype first, then the activation's gradient: what the next layer's
  // linear_backward (grad_rows) and this layer's (its GELU step) compute one after the other.
  const bool gelu = activation == LinearActivation::GeluTanh;
  Tensor product = gelu ? empty(grad_pre.shape(), {.dtype = grad_pre.dtype(), .device = grad_pre.device()}) : grad_pre;
  kernels.matmul(grad_out, weight, product);
  if (gelu) kernels.binary(BinaryOp::GeluTanhBackward, pre_activation, product, grad_pre);
  if (grad_pre_sums.defined()) {
    Tensor column_sums = grad_pre_sums.view({1, grad_pre_sums.numel()});
    kernels.reduce(ReductionKind::Sum, grad_pre, {0}, column_sums);
  }
}

}  // namespace dtrain
