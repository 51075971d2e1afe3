#pragma once
// Every CUDA runtime and cuBLAS call is checked where it is made; a failure becomes a
// dtrain::Error that names the call and the runtime's own message. Kernel launches are checked
// with cudaGetLastError right after the launch, naming the kernel (a bad configuration shows up
// there; a fault while running shows up at the next synchronising call, named there).
//
//   DTRAIN_CUDA_CHECK(cudaMemcpyAsync(to, from, n, cudaMemcpyDeviceToHost, stream));
//   fill_kernel<<<blocks, threads, 0, stream>>>(...);
//   check_launch("fill", out.dtype());
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "core/dtype.h"

namespace dtrain::cuda {

void check_cuda(cudaError_t status, const char* call, const char* file, int line);
void check_cublas(cublasStatus_t status, const char* call, const char* file, int line);
// After a kernel launch: raises naming the kernel (and its dtype) if the launch failed.
void check_launch(const char* kernel, DType dtype);
void check_launch(const char* kernel);

}  // namespace dtrain::cuda

#define DTRAIN_CUDA_CHECK(call) ::dtrain::cuda::check_cuda((call), #call, __FILE__, __LINE__)
#define DTRAIN_CUBLAS_CHECK(call) ::dtrain::cuda::check_cublas((call), #call, __FILE__, __LINE__)
