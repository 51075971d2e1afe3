// CudaBackend::random: the same numbers as the CPU for the same generator state. Element i comes
// from Philox block (offset + i / 2) through core/philox.h's philox_sample, the function the CPU
// kernel calls, compiled for the device. Uniform and Bernoulli values are bit-identical; normal
// ones go through the device's log, sin and cos, within an ulp of the host's in double (and
// identical once rounded to float).
#include <cstdint>
#include <type_traits>

#include "core/philox.h"
#include "cuda/cuda_backend.h"
#include "cuda/kernels/elementwise.cuh"

namespace dtrain::cuda {
namespace {

template <typename T>
__global__ void random_kernel(T* out, int64_t n, int kind, uint64_t seed, uint64_t offset, double a, double b) {
  for (int64_t i = global_thread(); i < n; i += grid_stride()) {
    const double value = philox_sample(kind, seed, offset, i, a, b);
    if constexpr (std::is_same_v<T, bool>) out[i] = value != 0.0;
    else out[i] = Element<T>::store(static_cast<compute_t<T>>(value));
  }
}

}  // namespace

void CudaBackend::random(RandomKind kind, RandomStream stream, double a, double b, Tensor& out) {
  const int64_t n = out.numel();
  if (n == 0) return;
  if (!out.is_contiguous()) fail("internal: random kernel expects a contiguous out, got strides ", strides_str(out.strides()));
  LaunchContext context(out.device());
  visit_dtype(out.dtype(), [&]<typename T>() {
    random_kernel<T><<<blocks_for(n), kThreads, 0, context.stream>>>(static_cast<T*>(out.data()), n, static_cast<int>(kind),
                                                                     stream.seed, stream.offset, a, b);
  });
  check_launch("random", out.dtype());
}

}  // namespace dtrain::cuda
