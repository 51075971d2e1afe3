#include "dist/nccl/delay_kernel.h"
#include "dist/nccl/nccl_check.h"

namespace dtrain::dist::nccl {
namespace {

__device__ unsigned long long global_nanoseconds() {
  unsigned long long now;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  return now;
}

__global__ void spin_kernel(unsigned long long nanoseconds) {
  const unsigned long long start = global_nanoseconds();
  while (global_nanoseconds() - start < nanoseconds) __nanosleep(1000);
}

}  // namespace

void spin_on_stream(cudaStream_t stream, int64_t microseconds) {
  if (microseconds <= 0) return;
  spin_kernel<<<1, 1, 0, stream>>>(static_cast<unsigned long long>(microseconds) * 1000ull);
  DTRAIN_NCCL_CUDA_CHECK(cudaGetLastError());  // the launch of spin_kernel
}

}  // namespace dtrain::dist::nccl
