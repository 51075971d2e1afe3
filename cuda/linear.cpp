// CudaBackend::linear through cuBLASLt: one GEMM whose epilogue adds the bias and, for the GELU
// variant, applies GELU (tanh form) and stores the value before it for the backward
// (CUBLASLT_EPILOGUE_BIAS / GELU_AUX_BIAS). Row-major out[M, N] = rows[M, K] @ weight[N, K]^T is
// the column-major D[N, M] = op_T(A[K, N]) @ B[K, M] with A = weight and B = rows, so the bias runs
// along D's rows, as cuBLASLt's epilogue wants. Float32 (TF32 only when allowed), bfloat16 and
// float16 with float32 accumulation. Anything cuBLASLt cannot take — float64, strided operands,
// an auxiliary leading dim not a multiple of 8, no algorithm from the heuristic — runs the plain
// path instead: matmul (cuBLAS), the bias added in place, the activation kernel. Descriptors and
// the heuristic's choice are made once per shape (cuda/lt_plan_cache.h).
#include <cublasLt.h>

#include <cstdint>

#include "cuda/check.h"
#include "cuda/cuda_backend.h"
#include "cuda/lt_plan_cache.h"
#include "cuda/lt_types.h"
#include "cuda/stream.h"

namespace dtrain::cuda {
namespace {

// Runs the fused GEMM; false (nothing queued) when cuBLASLt offers no algorithm for it.
bool try_lt_linear(const Tensor& rows, const Tensor& weight, const Tensor& bias, LinearActivation activation, Tensor& out,
                   Tensor& pre_activation) {
  const LtTypes types = lt_types(out.dtype());
  const int64_t m = rows.size(0), k = rows.size(1), n = weight.size(0);
  const bool gelu = activation == LinearActivation::GeluTanh;
  if (!types.supported || m == 0 || n == 0 || k == 0 || !row_major_contiguous(rows) || !row_major_contiguous(weight) ||
      (bias.defined() && !bias.is_contiguous()) || (gelu && n % 8 != 0)) {
    return false;
  }
  DeviceGuard guard(out.device().index);
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  if (gelu) epilogue = bias.defined() ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
  else if (bias.defined()) epilogue = CUBLASLT_EPILOGUE_BIAS;
  // Column-major: D [N, M] = op_T(weight as [K, N]) @ rows as [K, M].
  LtPlanKey key;
  key.device = out.device().index;
  key.m = n;
  key.n = m;
  key.k = k;
  key.lda = k;
  key.ldb = k;
  key.ldd = n;
  key.aux_ld = gelu ? n : 0;
  key.data_type = types.data;
  key.compute_type = types.compute;
  key.epilogue = epilogue;
  key.transpose_a = true;
  key.transpose_b = false;
  key.alignment_a = alignment_of(weight.data());
  key.alignment_b = alignment_of(rows.data());
  key.alignment_d = alignment_of(out.data());
  key.alignment_bias = bias.defined() ? alignment_of(bias.data()) : 0;
  LtOperands operands{.a = weight.data(), .b = rows.data(), .d = out.data(), .bias = bias.defined() ? bias.data() : nullptr,
                      .aux = gelu ? pre_activation.data() : nullptr};
  return LtPlanCache::for_this_thread().run(key, operands, current_stream(out.device().index));
}

}  // namespace

void CudaBackend::linear(const Tensor& rows, const Tensor& weight, const Tensor& bias, LinearActivation activation,
                         Tensor& out, Tensor& pre_activation) {
  if (try_lt_linear(rows, weight, bias, activation, out, pre_activation)) return;
  // The plain path: the same kernels, in the same order, as the CPU's.
  linear_from_kernels(*this, rows, weight, bias, activation, out, pre_activation);
}

}  // namespace dtrain::cuda
