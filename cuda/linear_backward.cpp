// CudaBackend::linear_backward: the weight gradient and the bias gradient in one cuBLASLt GEMM.
// Row-major grad_weight [N, K] = grad_pre^T [N, M] @ rows [M, K] is the column-major
// D [K, N] = A [K, M] @ op_T(B [N, M]) with A = rows and B = grad_pre; the BGRADB epilogue sums
// op(B) over the GEMM's k (the M rows) into a vector of D's N columns: the bias gradient, which
// otherwise is a separate reduction over all M rows of grad_pre. grad_pre is grad_out, or with the
// GELU the GELU's gradient at the saved pre-activation times grad_out (the elementwise kernel, as
// on the CPU); grad_rows is cuBLAS's GEMM. Whatever cuBLASLt cannot take (float64, strided rows, no
// algorithm, no weight gradient wanted) runs the composed kernels instead, as the CPU does.
#include <cublasLt.h>

#include <cstdint>

#include "core/ops/factory.h"
#include "cuda/cuda_backend.h"
#include "cuda/lt_plan_cache.h"
#include "cuda/lt_types.h"
#include "cuda/stream.h"

namespace dtrain::cuda {
namespace {

// grad_weight and grad_bias from grad_pre in one GEMM; false (nothing queued) where cuBLASLt declines.
bool try_lt_weight_and_bias_gradients(const Tensor& grad_pre, const Tensor& rows, Tensor& grad_weight, Tensor& grad_bias) {
  const LtTypes types = lt_types(grad_pre.dtype());
  const int64_t m = grad_pre.size(0), n = grad_pre.size(1), k = rows.size(1);
  if (!types.supported || m == 0 || n == 0 || k == 0 || !row_major_contiguous(rows) || !row_major_contiguous(grad_pre) ||
      !grad_weight.is_contiguous() || !grad_bias.is_contiguous()) {
    return false;
  }
  LtPlanKey key;
  key.device = grad_pre.device().index;
  key.m = k;
  key.n = n;
  key.k = m;
  key.lda = k;  // rows as column-major [K, M]
  key.ldb = n;  // grad_pre as column-major [N, M], transposed
  key.ldd = k;  // grad_weight as column-major [K, N]
  key.data_type = types.data;
  key.compute_type = types.compute;
  key.epilogue = CUBLASLT_EPILOGUE_BGRADB;
  key.transpose_a = false;
  key.transpose_b = true;
  key.alignment_a = alignment_of(rows.data());
  key.alignment_b = alignment_of(grad_pre.data());
  key.alignment_d = alignment_of(grad_weight.data());
  key.alignment_bias = alignment_of(grad_bias.data());
  const LtOperands operands{.a = rows.data(), .b = grad_pre.data(), .d = grad_weight.data(), .bias = grad_bias.data()};
  return LtPlanCache::for_this_thread().run(key, operands, current_stream(key.device));
}

}  // namespace

void CudaBackend::linear_backward(const Tensor& grad_out, const Tensor& rows, const Tensor& weight,
                                  const Tensor& pre_activation, LinearActivation activation, Tensor& grad_rows,
                                  Tensor& grad_weight, Tensor& grad_bias) {
  if (!grad_weight.defined() || !grad_bias.defined()) {
    linear_backward_from_kernels(*this, grad_out, rows, weight, pre_activation, activation, grad_rows, grad_weight,
                                 grad_bias);
    return;
  }
  DeviceGuard guard(grad_out.device().index);
  Tensor grad_pre = grad_out;
  if (activation == LinearActivation::GeluTanh) {
    grad_pre = empty(pre_activation.shape(), {.dtype = pre_activation.dtype(), .device = pre_activation.device()});
    binary(BinaryOp::GeluTanhBackward, pre_activation, grad_out, grad_pre);
  }
  if (!try_lt_weight_and_bias_gradients(grad_pre, rows, grad_weight, grad_bias)) {
    // grad_pre is already through the activation: compose the rest without it.
    Tensor no_pre_activation;
    linear_backward_from_kernels(*this, grad_pre, rows, weight, no_pre_activation, LinearActivation::None, grad_rows,
                                 grad_weight, grad_bias);
    return;
  }
  if (grad_rows.defined()) matmul(grad_pre, weight, grad_rows);
}

}  // namespace dtrain::cuda
