#pragma once
// Typed inner loops over strided_loop: one for out = f(a), one for out = f(a, b). Each has a
// contiguous path the compiler vectorises, a path for a broadcast (zero-stride) operand, and a
// general strided path.
#include <array>
#include <cstdint>

#include "core/cpu/strided_loop.h"
#include "core/dtype.h"

namespace dtrain::cpu {

template <typename T, typename Out, typename Fn>
void unary_loop(const Tensor& a, Tensor& out, Fn fn) {
  using C = compute_t<T>;
  strided_loop<2>(out.shape(), {&out, &a}, [&](std::array<char*, 2> p, std::array<int64_t, 2> s, int64_t n) {
    Out* o = reinterpret_cast<Out*>(p[0]);
    const T* x = reinterpret_cast<const T*>(p[1]);
    if (s[0] == sizeof(Out) && s[1] == sizeof(T)) {
      for (int64_t i = 0; i < n; ++i) o[i] = static_cast<Out>(fn(static_cast<C>(x[i])));
    } else {
      for (int64_t i = 0; i < n; ++i) {
        *reinterpret_cast<Out*>(p[0] + i * s[0]) = static_cast<Out>(fn(static_cast<C>(*reinterpret_cast<const T*>(p[1] + i * s[1]))));
      }
    }
  });
}

template <typename T, typename Out, typename Fn>
void binary_loop(const Tensor& a, const Tensor& b, Tensor& out, Fn fn) {
  using C = compute_t<T>;
  strided_loop<3>(out.shape(), {&out, &a, &b}, [&](std::array<char*, 3> p, std::array<int64_t, 3> s, int64_t n) {
    Out* o = reinterpret_cast<Out*>(p[0]);
    const T* x = reinterpret_cast<const T*>(p[1]);
    const T* y = reinterpret_cast<const T*>(p[2]);
    constexpr int64_t out_size = sizeof(Out), in_size = sizeof(T);
    if (s[0] == out_size && s[1] == in_size && s[2] == in_size) {
      for (int64_t i = 0; i < n; ++i) o[i] = static_cast<Out>(fn(static_cast<C>(x[i]), static_cast<C>(y[i])));
    } else if (s[0] == out_size && s[1] == in_size && s[2] == 0) {
      const C y0 = static_cast<C>(y[0]);
      for (int64_t i = 0; i < n; ++i) o[i] = static_cast<Out>(fn(static_cast<C>(x[i]), y0));
    } else if (s[0] == out_size && s[1] == 0 && s[2] == in_size) {
      const C x0 = static_cast<C>(x[0]);
      for (int64_t i = 0; i < n; ++i) o[i] = static_cast<Out>(fn(x0, static_cast<C>(y[i])));
    } else {
      for (int64_t i = 0; i < n; ++i) {
        C xi = static_cast<C>(*reinterpret_cast<const T*>(p[1] + i * s[1]));
        C yi = static_cast<C>(*reinterpret_cast<const T*>(p[2] + i * s[2]));
        *reinterpret_cast<Out*>(p[0] + i * s[0]) = static_cast<Out>(fn(xi, yi));
      }
    }
  });
}

}  // namespace dtrain::cpu
