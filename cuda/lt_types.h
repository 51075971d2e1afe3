#pragma once
// The cuBLASLt data and compute types of a dtrain dtype: float32 (TF32 only when allowed),
// bfloat16 and float16, all with float32 accumulation. Anything else is not supported there.
#include <cublasLt.h>

#include "core/dtype.h"
#include "cuda/cuda_backend.h"

namespace dtrain::cuda {

struct LtTypes {
  bool supported = false;
  cudaDataType_t data = CUDA_R_32F;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
};

inline LtTypes lt_types(DType dtype) {
  switch (dtype) {
    case DType::Float32: return {true, CUDA_R_32F, tf32_matmul_allowed() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F};
    case DType::BFloat16: return {true, CUDA_R_16BF, CUBLAS_COMPUTE_32F};
    case DType::Float16: return {true, CUDA_R_16F, CUBLAS_COMPUTE_32F};
    default: return {};
  }
}

inline bool row_major_contiguous(const Tensor& matrix) {
  return matrix.dim() == 2 && matrix.stride(1) == 1 && matrix.stride(0) == matrix.size(1);
}

}  // namespace dtrain::cuda
