#pragma once
// Every NCCL and CUDA runtime call of libdtrain_nccl.so is checked where it is made; a failure
// becomes a dtrain::Error naming the call, the library's message and where. (The library does
// not link libdtrain_cuda.so, whose cuda/check.h is the same idea for the CUDA backend.)
//
//   DTRAIN_NCCL_CHECK(ncclAllReduce(data, data, count, type, ncclSum, comm, stream));
//   DTRAIN_NCCL_CUDA_CHECK(cudaEventRecord(event, stream));
#include <cuda_runtime.h>
#include <nccl.h>

namespace dtrain::dist::nccl {

void check_nccl(ncclResult_t result, const char* call, const char* file, int line);
void check_cuda(cudaError_t status, const char* call, const char* file, int line);

}  // namespace dtrain::dist::nccl

#define DTRAIN_NCCL_CHECK(call) ::dtrain::dist::nccl::check_nccl((call), #call, __FILE__, __LINE__)
#define DTRAIN_NCCL_CUDA_CHECK(call) ::dtrain::dist::nccl::check_cuda((call), #call, __FILE__, __LINE__)
