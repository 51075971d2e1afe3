#include "dist/nccl/nccl_check.h"

#include "core/error.h"

namespace dtrain::dist::nccl {

void check_nccl(ncclResult_t result, const char* call, const char* file, int line) {
  if (result == ncclSuccess) return;
  // ncclGetLastError(nullptr): the last error NCCL recorded on this thread, with its detail.
  const char* detail = ncclGetLastError(nullptr);
  fail("NCCL call ", call, " failed: ", ncclGetErrorString(result), " (code ", static_cast<int>(result), ")",
       detail && *detail ? "; NCCL says: " : "", detail ? detail : "", " [", file, ":", line, "]");
}

void check_cuda(cudaError_t status, const char* call, const char* file, int line) {
  if (status == cudaSuccess) return;
  fail("CUDA call ", call, " failed: ", cudaGetErrorName(status), " (", cudaGetErrorString(status), ") [", file, ":",
       line, "]");
}

}  // namespace dtrain::dist::nccl
