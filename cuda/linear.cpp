// CudaBackend::linear through cuBLASLt: one GEMM whose epilogue adds the bias and, for the GELU
// variant, applies GELU (tanh form) and stores the value before it for the backward
// (CUBLASLT_EPILOGUE_BIAS / GELU_AUX_BIAS). Row-major out[M, N] = rows[M, K] @ weight[N, K]^T is
// the column-major D[N, M] = op_T(A[K, N]) @ B[K, M] with A = weight and B = rows, so the bias runs
// along D's rows, as cuBLASLt's epilogue wants. Float32 (TF32 only when allowed), bfloat16 and
// float16 with float32 accumulation. Anything cuBLASLt cannot take — float64, strided operands,
// an auxiliary leading dim not a multiple of 8, no algorithm from the heuristic — runs the plain
// path instead: matmul (cuBLAS), the bias added in place, the activation kernel.
#include <cublasLt.h>

#include <array>
#include <cstdint>

#include "cuda/caching_allocator.h"
#include "cuda/check.h"
#include "cuda/cuda_backend.h"
#include "cuda/stream.h"

namespace dtrain::cuda {
namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;  // what cuBLASLt's Hopper kernels like to have

cublasLtHandle_t lt_handle_for(int device) {
  thread_local std::array<cublasLtHandle_t, kMaxDevices> handles{};
  if (handles[device] == nullptr) {
    DeviceGuard guard(device);
    DTRAIN_CUBLAS_CHECK(cublasLtCreate(&handles[device]));  // never destroyed: the driver may be gone at exit
  }
  return handles[device];
}

// Owners of the cuBLASLt descriptors of one call.
struct MatmulDescription {
  cublasLtMatmulDesc_t handle = nullptr;
  ~MatmulDescription() {
    if (handle != nullptr) cublasLtMatmulDescDestroy(handle);
  }
};
struct MatrixLayout {
  cublasLtMatrixLayout_t handle = nullptr;
  ~MatrixLayout() {
    if (handle != nullptr) cublasLtMatrixLayoutDestroy(handle);
  }
};
struct Preference {
  cublasLtMatmulPreference_t handle = nullptr;
  ~Preference() {
    if (handle != nullptr) cublasLtMatmulPreferenceDestroy(handle);
  }
};

// The largest power of two up to 256 that divides the address (cuBLASLt assumes 256 unless told).
uint32_t alignment_of(const void* pointer) {
  const auto address = reinterpret_cast<uintptr_t>(pointer);
  uint32_t alignment = 256;
  while (alignment > 1 && address % alignment != 0) alignment /= 2;
  return alignment;
}

struct LtTypes {
  bool supported = false;
  cudaDataType_t data = CUDA_R_32F;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
};

LtTypes lt_types(DType dtype) {
  switch (dtype) {
    case DType::Float32: return {true, CUDA_R_32F, allow_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F};
    case DType::BFloat16: return {true, CUDA_R_16BF, CUBLAS_COMPUTE_32F};
    case DType::Float16: return {true, CUDA_R_16F, CUBLAS_COMPUTE_32F};
    default: return {};
  }
}

bool row_major_contiguous(const Tensor& matrix) {
  return matrix.dim() == 2 && matrix.stride(1) == 1 && matrix.stride(0) == matrix.size(1);
}

template <typename Value>
void set_description(cublasLtMatmulDesc_t description, cublasLtMatmulDescAttributes_t attribute, const Value& value) {
  DTRAIN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(description, attribute, &value, sizeof(value)));
}

template <typename Value>
void set_preference(cublasLtMatmulPreference_t preference, cublasLtMatmulPreferenceAttributes_t attribute,
                    const Value& value) {
  DTRAIN_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, attribute, &value, sizeof(value)));
}

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
  const cudaStream_t stream = current_stream(out.device().index);
  MatmulDescription description;
  DTRAIN_CUBLAS_CHECK(cublasLtMatmulDescCreate(&description.handle, types.compute, CUDA_R_32F));
  set_description(description.handle, CUBLASLT_MATMUL_DESC_TRANSA, CUBLAS_OP_T);
  set_description(description.handle, CUBLASLT_MATMUL_DESC_TRANSB, CUBLAS_OP_N);
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  if (gelu) epilogue = bias.defined() ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
  else if (bias.defined()) epilogue = CUBLASLT_EPILOGUE_BIAS;
  set_description(description.handle, CUBLASLT_MATMUL_DESC_EPILOGUE, epilogue);
  if (bias.defined()) set_description(description.handle, CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias.data());
  if (gelu) {
    set_description(description.handle, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, pre_activation.data());
    set_description(description.handle, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, n);
  }

  MatrixLayout a, b, d;  // weight as column-major [K, N], rows as [K, M], out as [N, M]
  DTRAIN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&a.handle, types.data, static_cast<uint64_t>(k), static_cast<uint64_t>(n), k));
  DTRAIN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&b.handle, types.data, static_cast<uint64_t>(k), static_cast<uint64_t>(m), k));
  DTRAIN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d.handle, types.data, static_cast<uint64_t>(n), static_cast<uint64_t>(m), n));

  Preference preference;
  DTRAIN_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference.handle));
  set_preference(preference.handle, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, kWorkspaceBytes);
  set_preference(preference.handle, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, alignment_of(weight.data()));
  set_preference(preference.handle, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, alignment_of(rows.data()));
  set_preference(preference.handle, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, alignment_of(out.data()));
  set_preference(preference.handle, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, alignment_of(out.data()));

  cublasLtHandle_t handle = lt_handle_for(out.device().index);
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(handle, description.handle, a.handle, b.handle, d.handle,
                                                               d.handle, preference.handle, 1, &heuristic, &found);
  if (status == CUBLAS_STATUS_NOT_SUPPORTED || (status == CUBLAS_STATUS_SUCCESS && found == 0)) return false;
  DTRAIN_CUBLAS_CHECK(status);

  ScratchBuffer workspace(out.device().index, kWorkspaceBytes);
  const float alpha = 1.0f, beta = 0.0f;
  DTRAIN_CUBLAS_CHECK(cublasLtMatmul(handle, description.handle, &alpha, weight.data(), a.handle, rows.data(), b.handle,
                                     &beta, out.data(), d.handle, out.data(), d.handle, &heuristic.algo, workspace.data(),
                                     kWorkspaceBytes, stream));
  return true;
}

}  // namespace

void CudaBackend::linear(const Tensor& rows, const Tensor& weight, const Tensor& bias, LinearActivation activation,
                         Tensor& out, Tensor& pre_activation) {
  if (try_lt_linear(rows, weight, bias, activation, out, pre_activation)) return;
  // The plain path: the same kernels, in the same order, as the CPU's.
  linear_from_kernels(*this, rows, weight, bias, activation, out, pre_activation);
}

}  // namespace dtrain::cuda
