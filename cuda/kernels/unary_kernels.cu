// CudaBackend::unary (elementwise math on one tensor) and CudaBackend::where, with the formulas of
// core/cpu/unary_kernels.cpp. As in binary_kernels.cu the op is a kernel argument.
#include <cstdint>
#include <type_traits>

#include "core/integer_power.h"
#include "cuda/cuda_backend.h"
#include "cuda/kernels/device_math.cuh"
#include "cuda/kernels/elementwise.cuh"

namespace dtrain::cuda {
namespace {

bool is_signed_op(UnaryOp op) {
  return op == UnaryOp::Neg || op == UnaryOp::Abs || op == UnaryOp::Sign || op == UnaryOp::Relu || op == UnaryOp::PowScalar;
}

template <typename C>
struct UnaryMath {
  UnaryOp op;
  double parameter;  // the exponent of PowScalar

  __device__ C operator()(C x) const {
    switch (op) {
      case UnaryOp::Neg: return -x;
      case UnaryOp::Abs: return x < C(0) ? -x : x;
      case UnaryOp::Sign: return static_cast<C>((C(0) < x) - (x < C(0)));
      case UnaryOp::Relu: return x > C(0) ? x : C(0);
      case UnaryOp::PowScalar:
        if constexpr (std::is_integral_v<C>) {
          // Integral exponents only (core/ops/unary.cpp), computed exactly as on the CPU.
          return static_cast<C>(integer_power<int64_t>(x, static_cast<int64_t>(parameter)));
        } else {
          if (parameter == 2.0) return x * x;
          return math::pow(x, static_cast<C>(parameter));
        }
      default: break;
    }
    if constexpr (std::is_floating_point_v<C>) {
      switch (op) {
        case UnaryOp::Exp: return math::exp(x);
        case UnaryOp::Log: return math::log(x);
        case UnaryOp::Sqrt: return math::sqrt(x);
        case UnaryOp::Rsqrt: return C(1) / math::sqrt(x);
        case UnaryOp::Reciprocal: return C(1) / x;
        case UnaryOp::Tanh: return math::tanh(x);
        case UnaryOp::Sigmoid: return C(1) / (C(1) + math::exp(-x));
        case UnaryOp::GeluTanh:
          return C(0.5) * x * (C(1) + math::tanh(C(0.7978845608028654) * (x + C(0.044715) * x * x * x)));
        case UnaryOp::GeluErf: return C(0.5) * x * (C(1) + math::erf(x * C(0.7071067811865476)));
        case UnaryOp::Sin: return math::sin(x);
        case UnaryOp::Cos: return math::cos(x);
        default: break;
      }
    }
    return C(0);  // unreachable: the host checks the op against the dtype before launching
  }
};

template <typename C>
struct Select {
  __device__ C operator()(bool condition, C a, C b) const { return condition ? a : b; }
};

}  // namespace

void CudaBackend::unary(UnaryOp op, const Tensor& a, Tensor& out, double parameter) {
  LaunchContext context(out.device());
  visit_dtype(a.dtype(), [&]<typename T>() {
    using C = compute_t<T>;
    if constexpr (std::is_same_v<T, bool>) {
      fail("unary kernel '", unary_op_name(op), "' is not defined for bool tensors");
    } else {
      if (!std::is_floating_point_v<C> && !is_signed_op(op)) {
        fail("unary kernel '", unary_op_name(op), "' is not defined for dtype ", a.dtype());
      }
      map1<T, T>(context, out, a, UnaryMath<C>{op, parameter}, unary_op_name(op));
    }
  });
}

void CudaBackend::where(const Tensor& condition, const Tensor& a, const Tensor& b, Tensor& out) {
  LaunchContext context(out.device());
  visit_dtype(out.dtype(), [&]<typename T>() { map3<T, bool, T, T>(context, out, condition, a, b, Select<compute_t<T>>{}, "where"); });
}

}  // namespace dtrain::cuda
