// CpuBackend::linear: the GEMM, then the bias added in place, then the activation — the same
// kernels, in the same order, as layers/linear.cpp ran them before the entry existed, so the CPU's
// results did not change.
#include "core/cpu/cpu_backend.h"
#include "core/grad_mode.h"
#include "core/ops/view.h"

namespace dtrain::cpu {

void CpuBackend::linear(const Tensor& rows, const Tensor& weight, const Tensor& bias, LinearActivation activation,
                        Tensor& out, Tensor& pre_activation) {
  NoGradGuard no_grad;  // the views below are kernel plumbing, never part of a graph
  Tensor& product = activation == LinearActivation::None ? out : pre_activation;
  matmul(rows, transpose(weight, 0, 1), product);
  if (bias.defined()) {
    Tensor in = product;
    binary(BinaryOp::Add, in, expand(bias, product.shape()), product);
  }
  if (activation == LinearActivation::GeluTanh) unary(UnaryOp::GeluTanh, product, out, 0.0);
}

}  // namespace dtrain::cpu
