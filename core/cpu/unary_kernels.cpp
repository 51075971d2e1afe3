// CpuBackend::unary: elementwise math on one tensor.
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/elementwise_loops.h"
#include "core/cpu/fast_tanh.h"
#include "core/integer_power.h"

namespace dtrain::cpu {
namespace {

template <typename T>
void signed_ops(UnaryOp op, const Tensor& a, Tensor& out) {
  using C = compute_t<T>;
  switch (op) {
    case UnaryOp::Neg: return unary_loop<T, T>(a, out, [](C x) { return -x; });
    case UnaryOp::Abs: return unary_loop<T, T>(a, out, [](C x) { return x < C(0) ? -x : x; });
    case UnaryOp::Sign: return unary_loop<T, T>(a, out, [](C x) { return static_cast<C>((C(0) < x) - (x < C(0))); });
    case UnaryOp::Relu: return unary_loop<T, T>(a, out, [](C x) { return x > C(0) ? x : C(0); });
    default: break;
  }
  fail("unary kernel '", unary_op_name(op), "' is not defined for dtype ", a.dtype());
}

template <typename T>
void floating_ops(UnaryOp op, const Tensor& a, Tensor& out, double parameter) {
  using C = compute_t<T>;
  switch (op) {
    case UnaryOp::Exp: return unary_loop<T, T>(a, out, [](C x) { return std::exp(x); });
    case UnaryOp::Log: return unary_loop<T, T>(a, out, [](C x) { return std::log(x); });
    case UnaryOp::Sqrt: return unary_loop<T, T>(a, out, [](C x) { return std::sqrt(x); });
    case UnaryOp::Rsqrt: return unary_loop<T, T>(a, out, [](C x) { return C(1) / std::sqrt(x); });
    case UnaryOp::Reciprocal: return unary_loop<T, T>(a, out, [](C x) { return C(1) / x; });
    case UnaryOp::Tanh: return unary_loop<T, T>(a, out, [](C x) { return fast_tanh(x); });
    case UnaryOp::Sigmoid: return unary_loop<T, T>(a, out, [](C x) { return C(1) / (C(1) + std::exp(-x)); });
    case UnaryOp::GeluTanh:
      return unary_loop<T, T>(a, out, [](C x) {
        return C(0.5) * x * (C(1) + fast_tanh(C(0.7978845608028654) * (x + C(0.044715) * x * x * x)));
      });
    case UnaryOp::GeluErf:
      return unary_loop<T, T>(a, out, [](C x) { return C(0.5) * x * (C(1) + std::erf(x * C(0.7071067811865476))); });
    case UnaryOp::Sin: return unary_loop<T, T>(a, out, [](C x) { return std::sin(x); });
    case UnaryOp::Cos: return unary_loop<T, T>(a, out, [](C x) { return std::cos(x); });
    case UnaryOp::PowScalar: {
      C exponent = static_cast<C>(parameter);
      if (parameter == 2.0) return unary_loop<T, T>(a, out, [](C x) { return x * x; });
      return unary_loop<T, T>(a, out, [exponent](C x) { return std::pow(x, exponent); });
    }
    default: return signed_ops<T>(op, a, out);
  }
}

}  // namespace

void CpuBackend::unary(UnaryOp op, const Tensor& a, Tensor& out, double parameter) {
  visit_dtype(a.dtype(), [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) {
      fail("unary kernel '", unary_op_name(op), "' is not defined for bool tensors");
    } else if constexpr (std::is_floating_point_v<compute_t<T>>) {
      floating_ops<T>(op, a, out, parameter);
    } else if (op == UnaryOp::PowScalar) {
      // The op passes integer tensors integral exponents only (core/ops/unary.cpp).
      const auto exponent = static_cast<int64_t>(parameter);
      unary_loop<T, T>(a, out, [exponent](T x) { return static_cast<T>(integer_power<int64_t>(x, exponent)); });
    } else {
      signed_ops<T>(op, a, out);
    }
  });
}

}  // namespace dtrain::cpu
