#include "cuda/check.h"

#include "core/error.h"

namespace dtrain::cuda {

void check_cuda(cudaError_t status, const char* call, const char* file, int line) {
  if (status == cudaSuccess) return;
  cudaGetLastError();  // clears a non-sticky error so the next call does not report it again
  fail("CUDA call ", call, " failed: ", cudaGetErrorName(status), " (", cudaGetErrorString(status), ") at ", file, ":", line);
}

void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  fail("cuBLAS call ", call, " failed: ", cublasGetStatusName(status), " (", cublasGetStatusString(status), ") at ", file,
       ":", line);
}

void check_launch(const char* kernel, DType dtype) {
  cudaError_t status = cudaGetLastError();
  if (status == cudaSuccess) return;
  fail("CUDA kernel ", kernel, " (", dtype, ") failed to launch: ", cudaGetErrorName(status), " (",
       cudaGetErrorString(status), ")");
}

void check_launch(const char* kernel) {
  cudaError_t status = cudaGetLastError();
  if (status == cudaSuccess) return;
  fail("CUDA kernel ", kernel, " failed to launch: ", cudaGetErrorName(status), " (", cudaGetErrorString(status), ")");
}

}  // namespace dtrain::cuda
