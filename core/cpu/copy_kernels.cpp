// CpuBackend: fill, arange, strided copy with dtype conversion, host transfers.
#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/elementwise_loops.h"

namespace dtrain::cpu {

void CpuBackend::fill(Tensor& out, Scalar value) {
  visit_dtype(out.dtype(), [&]<typename T>() {
    const T filled = static_cast<T>(value.to<compute_t<T>>());
    strided_loop<1>(out.shape(), {&out}, [filled](std::array<char*, 1> p, std::array<int64_t, 1> s, int64_t n) {
      if (s[0] == sizeof(T)) {
        T* o = reinterpret_cast<T*>(p[0]);
        for (int64_t i = 0; i < n; ++i) o[i] = filled;
      } else {
        for (int64_t i = 0; i < n; ++i) *reinterpret_cast<T*>(p[0] + i * s[0]) = filled;
      }
    });
  });
}

void CpuBackend::arange(Tensor& out, double start, double step) {
  visit_dtype(out.dtype(), [&]<typename T>() {
    T* o = static_cast<T*>(out.data());
    parallel_for(out.numel(), kParallelGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) o[i] = static_cast<T>(static_cast<compute_t<T>>(start + static_cast<double>(i) * step));
    });
  });
}

void CpuBackend::copy(const Tensor& source, Tensor& destination) {
  if (source.dtype() == destination.dtype() && source.is_contiguous() && destination.is_contiguous()) {
    const char* from = static_cast<const char*>(source.data());
    char* to = static_cast<char*>(destination.data());
    parallel_for(static_cast<int64_t>(source.nbytes()), 1 << 20, [&](int64_t begin, int64_t end) {
      std::memcpy(to + begin, from + begin, static_cast<size_t>(end - begin));
    });
    return;
  }
  visit_dtype(source.dtype(), [&]<typename From>() {
    visit_dtype(destination.dtype(), [&]<typename To>() {
      using C = compute_t<From>;
      unary_loop<From, To>(source, destination, [](C x) {
        if constexpr (std::is_same_v<To, bool>) return x != C(0);
        else return static_cast<compute_t<To>>(x);
      });
    });
  });
}

void CpuBackend::copy_to_host(const Tensor& source, Tensor& host_destination) {
  if (source.nbytes() > 0) std::memcpy(host_destination.data(), source.data(), source.nbytes());
}

void CpuBackend::copy_from_host(const Tensor& host_source, Tensor& destination) {
  if (host_source.nbytes() > 0) std::memcpy(destination.data(), host_source.data(), host_source.nbytes());
}

}  // namespace dtrain::cpu
