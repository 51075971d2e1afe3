// CudaBackend::linear_input_gradient: the input-gradient GEMM of an MLP's proj, GELU's backward and
// fc's bias gradient in one cuBLASLt call (CUBLASLT_EPILOGUE_DGELU_BGRAD). Row-major
// grad_pre [M, K] = grad_out [M, N] @ weight [N, K] is the column-major D [K, M] = A [K, N] @ B [N, M]
// with A = weight and B = grad_out, neither transposed; the epilogue multiplies D by GELU's gradient
// at the auxiliary matrix (pre_activation, as linear's GELU_AUX_BIAS stored it, the same [K, M]
// layout) and sums the result over D's columns (the M rows) into a vector of K: fc's bias gradient.
// The product is rounded once, after the GELU's gradient, where the composed kernels round it before
// as well: results agree with the CPU to the dtype's rounding, not bitwise. Whatever cuBLASLt
// cannot take (float64, strided operands, K not a multiple of 8, no algorithm) runs the composed
// kernels, as the CPU does.
#include <cublasLt.h>

#include <cstdint>

#include "cuda/cuda_backend.h"
#include "cuda/lt_plan_cache.h"
#include "cuda/lt_types.h"
#include "cuda/stream.h"

namespace dtrain::cuda {
namespace {

// grad_pre (and grad_pre_sums where defined) in one GEMM; false (nothing queued) where cuBLASLt declines.
bool try_lt_dgelu(const Tensor& grad_out, const Tensor& weight, const Tensor& pre_activation, Tensor& grad_pre,
                  Tensor& grad_pre_sums) {
  const LtTypes types = lt_types(grad_pre.dtype());
  const int64_t m = grad_out.size(0), n = grad_out.size(1), k = weight.size(1);
  const bool sums = grad_pre_sums.defined();
  if (!types.supported || m == 0 || n == 0 || k == 0 || k % 8 != 0 || !row_major_contiguous(grad_out) ||
      !row_major_contiguous(weight) || !row_major_contiguous(pre_activation) || !row_major_contiguous(grad_pre) ||
      (sums && !grad_pre_sums.is_contiguous())) {
    return false;
  }
  LtPlanKey key;
  key.device = grad_pre.device().index;
  key.m = k;
  key.n = m;
  key.k = n;
  key.lda = k;  // weight as column-major [K, N]
  key.ldb = n;  // grad_out as column-major [N, M]
  key.ldd = k;  // grad_pre as column-major [K, M]
  key.aux_ld = k;
  key.data_type = types.data;
  key.compute_type = types.compute;
  key.epilogue = sums ? CUBLASLT_EPILOGUE_DGELU_BGRAD : CUBLASLT_EPILOGUE_DGELU;
  key.transpose_a = false;
  key.transpose_b = false;
  key.alignment_a = alignment_of(weight.data());
  key.alignment_b = alignment_of(grad_out.data());
  key.alignment_d = alignment_of(grad_pre.data());
  key.alignment_bias = sums ? alignment_of(grad_pre_sums.data()) : 0;
  // The DGELU epilogues only read aux (the pre-activation).
  const LtOperands operands{.a = weight.data(), .b = grad_out.data(), .d = grad_pre.data(),
                            .bias = sums ? grad_pre_sums.data() : nullptr, .aux = pre_activation.data()};
  DeviceGuard guard(key.device);
  return LtPlanCache::for_this_thread().run(key, operands, current_stream(key.device));
}

}  // namespace

void CudaBackend::linear_input_gradient(const Tensor& grad_out, const Tensor& weight, const Tensor& pre_activation,
                                        LinearActivation activation, Tensor& grad_pre, Tensor& grad_pre_sums) {
  if (activation == LinearActivation::GeluTanh &&
      try_lt_dgelu(grad_out, weight, pre_activation, grad_pre, grad_pre_sums)) {
    return;
  }
  linear_input_gradient_from_kernels(*this, grad_out, weight, pre_activation, activation, grad_pre, grad_pre_sums);
}

}  // namespace dtrain::cuda
