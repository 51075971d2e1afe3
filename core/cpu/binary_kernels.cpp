// CpuBackend::binary: arithmetic, comparisons and the fused activation backward helpers.
#include <array>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/elementwise_loops.h"
#include "core/cpu/fast_tanh.h"
#include "core/integer_power.h"

namespace dtrain::cpu {
namespace {

constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kGeluCoefficient = 0.044715;
constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;

template <typename T>
void arithmetic(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  using C = compute_t<T>;
  switch (op) {
    case BinaryOp::Add: return binary_loop<T, T>(a, b, out, [](C x, C y) { return x + y; });
    case BinaryOp::Sub: return binary_loop<T, T>(a, b, out, [](C x, C y) { return x - y; });
    case BinaryOp::Mul: return binary_loop<T, T>(a, b, out, [](C x, C y) { return x * y; });
    case BinaryOp::Div:
      if constexpr (std::is_integral_v<C>) {
        return binary_loop<T, T>(a, b, out, [](C x, C y) {
          if (y == 0) fail("div: integer division by zero");
          return x / y;
        });
      } else {
        return binary_loop<T, T>(a, b, out, [](C x, C y) { return x / y; });
      }
    case BinaryOp::Pow:
      if constexpr (std::is_integral_v<C>) {
        return binary_loop<T, T>(a, b, out, [](C x, C y) { return integer_power(x, y); });
      } else {
        return binary_loop<T, T>(a, b, out, [](C x, C y) { return static_cast<C>(std::pow(x, y)); });
      }
    case BinaryOp::Maximum:
      return binary_loop<T, T>(a, b, out, [](C x, C y) { return (x != x || x > y) ? x : y; });  // NaN propagates
    case BinaryOp::Minimum:
      return binary_loop<T, T>(a, b, out, [](C x, C y) { return (x != x || x < y) ? x : y; });
    default: break;
  }
  if constexpr (std::is_floating_point_v<C>) {
    switch (op) {
      case BinaryOp::ReluBackward:
        return binary_loop<T, T>(a, b, out, [](C x, C g) { return x > C(0) ? g : C(0); });
      case BinaryOp::GeluTanhBackward:
        return binary_loop<T, T>(a, b, out, [](C x, C g) {
          C inner = C(kSqrt2OverPi) * (x + C(kGeluCoefficient) * x * x * x);
          C tanh_inner = fast_tanh(inner);
          C derivative_inner = C(kSqrt2OverPi) * (C(1) + C(3 * kGeluCoefficient) * x * x);
          C derivative = C(0.5) * (C(1) + tanh_inner) + C(0.5) * x * (C(1) - tanh_inner * tanh_inner) * derivative_inner;
          return g * derivative;
        });
      case BinaryOp::GeluErfBackward:
        return binary_loop<T, T>(a, b, out, [](C x, C g) {
          C cdf = C(0.5) * (C(1) + std::erf(x * C(kInvSqrt2)));
          C pdf = C(kInvSqrt2Pi) * std::exp(C(-0.5) * x * x);
          return g * (cdf + x * pdf);
        });
      case BinaryOp::TanhBackward:
        return binary_loop<T, T>(a, b, out, [](C y, C g) { return g * (C(1) - y * y); });
      case BinaryOp::SigmoidBackward:
        return binary_loop<T, T>(a, b, out, [](C y, C g) { return g * y * (C(1) - y); });
      default: break;
    }
  }
  fail("binary kernel '", binary_op_name(op), "' is not defined for dtype ", a.dtype());
}

template <typename T>
void comparison(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  using C = compute_t<T>;
  switch (op) {
    case BinaryOp::Eq: return binary_loop<T, bool>(a, b, out, [](C x, C y) { return x == y; });
    case BinaryOp::Ne: return binary_loop<T, bool>(a, b, out, [](C x, C y) { return x != y; });
    case BinaryOp::Lt: return binary_loop<T, bool>(a, b, out, [](C x, C y) { return x < y; });
    case BinaryOp::Le: return binary_loop<T, bool>(a, b, out, [](C x, C y) { return x <= y; });
    case BinaryOp::Gt: return binary_loop<T, bool>(a, b, out, [](C x, C y) { return x > y; });
    case BinaryOp::Ge: return binary_loop<T, bool>(a, b, out, [](C x, C y) { return x >= y; });
    default: fail("internal: ", binary_op_name(op), " is not a comparison");
  }
}

}  // namespace

void CpuBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  visit_dtype(a.dtype(), [&]<typename T>() {
    if (is_comparison(op)) {
      comparison<T>(op, a, b, out);
    } else if constexpr (std::is_same_v<T, bool>) {
      fail("binary kernel '", binary_op_name(op), "' is not defined for bool tensors");
    } else {
      arithmetic<T>(op, a, b, out);
    }
  });
}

namespace {

// A contiguous run of where with a and b each either contiguous or one broadcast value (what
// masked_fill and the where backward make). Both values are loaded before the select, so the
// loop has no branch and no conditional load, and vectorises.
template <typename T, bool ContiguousA, bool ContiguousB>
void where_run(T* out, const bool* condition, const T* a, const T* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T value_a = a[ContiguousA ? i : 0];
    const T value_b = b[ContiguousB ? i : 0];
    out[i] = condition[i] ? value_a : value_b;
  }
}

}  // namespace

void CpuBackend::where(const Tensor& condition, const Tensor& a, const Tensor& b, Tensor& out) {
  visit_dtype(out.dtype(), [&]<typename T>() {
    strided_loop<4>(out.shape(), {&out, &condition, &a, &b}, [](std::array<char*, 4> p, std::array<int64_t, 4> s, int64_t n) {
      constexpr int64_t kSize = sizeof(T);
      T* o = reinterpret_cast<T*>(p[0]);
      const bool* c = reinterpret_cast<const bool*>(p[1]);
      const T* x = reinterpret_cast<const T*>(p[2]);
      const T* y = reinterpret_cast<const T*>(p[3]);
      const bool unit_out_and_condition = s[0] == kSize && s[1] == sizeof(bool);
      const bool a_unit = s[2] == kSize, a_broadcast = s[2] == 0, b_unit = s[3] == kSize, b_broadcast = s[3] == 0;
      if (unit_out_and_condition && a_unit && b_unit) return where_run<T, true, true>(o, c, x, y, n);
      if (unit_out_and_condition && a_broadcast && b_unit) return where_run<T, false, true>(o, c, x, y, n);
      if (unit_out_and_condition && a_unit && b_broadcast) return where_run<T, true, false>(o, c, x, y, n);
      for (int64_t i = 0; i < n; ++i) {
        bool take_a = *reinterpret_cast<const bool*>(p[1] + i * s[1]);
        *reinterpret_cast<T*>(p[0] + i * s[0]) = *reinterpret_cast<const T*>(p[take_a ? 2 : 3] + i * s[take_a ? 2 : 3]);
      }
    });
  });
}

}  // namespace dtrain::cpu
