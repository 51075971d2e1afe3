// CudaBackend: fill, arange and copy with dtype conversion (any strides).
#include <cstdint>
#include <type_traits>

#include "cuda/cuda_backend.h"
#include "cuda/kernels/elementwise.cuh"

namespace dtrain::cuda {
namespace {

template <typename C>
struct FillValue {
  C value;
  __device__ C operator()(int64_t) const { return value; }
};

template <typename C>
struct RangeValue {
  double start, step;
  // No fused multiply-add: start + i * step rounds as two operations, as the CPU's loop.
  __device__ C operator()(int64_t i) const {
    return static_cast<C>(__dadd_rn(start, __dmul_rn(static_cast<double>(i), step)));
  }
};

template <typename To, typename From>
struct ConvertValue {
  __device__ compute_t<To> operator()(compute_t<From> value) const {
    if constexpr (std::is_same_v<To, bool>) return value != compute_t<From>(0);
    else return static_cast<compute_t<To>>(value);
  }
};

}  // namespace

void CudaBackend::fill(Tensor& out, Scalar value) {
  LaunchContext context(out.device());
  visit_dtype(out.dtype(), [&]<typename T>() {
    const T filled = static_cast<T>(value.to<compute_t<T>>());  // rounded on the host, as the CPU's fill
    map0<T>(context, out, FillValue<compute_t<T>>{Element<T>::load(filled)}, "fill");
  });
}

void CudaBackend::arange(Tensor& out, double start, double step) {
  LaunchContext context(out.device());
  visit_dtype(out.dtype(), [&]<typename T>() { map0<T>(context, out, RangeValue<compute_t<T>>{start, step}, "arange"); });
}

void CudaBackend::copy(const Tensor& source, Tensor& destination) {
  if (destination.numel() == 0) return;
  LaunchContext context(destination.device());
  if (source.dtype() == destination.dtype() && source.is_contiguous() && destination.is_contiguous()) {
    DTRAIN_CUDA_CHECK(cudaMemcpyAsync(destination.data(), source.data(), source.nbytes(), cudaMemcpyDeviceToDevice,
                                      context.stream));
    return;
  }
  visit_dtype(source.dtype(), [&]<typename From>() {
    visit_dtype(destination.dtype(), [&]<typename To>() {
      map1<To, From>(context, destination, source, ConvertValue<To, From>{}, "copy");
    });
  });
}

}  // namespace dtrain::cuda
