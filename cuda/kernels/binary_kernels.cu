// CudaBackend::binary: arithmetic, comparisons and the fused activation backward helpers, with
// the same formulas as core/cpu/binary_kernels.cpp. The op is a kernel argument, not a template
// parameter: the switch on it is uniform across a warp and costs nothing next to the memory
// traffic, and it keeps the number of kernels (and nvcc's time) small.
#include <type_traits>

#include "core/integer_power.h"
#include "core/profiler_recorder.h"
#include "cuda/caching_allocator.h"
#include "cuda/cuda_backend.h"
#include "cuda/kernels/device_math.cuh"
#include "cuda/kernels/elementwise.cuh"

namespace dtrain::cuda {
namespace {

constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kGeluCoefficient = 0.044715;
constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;

bool is_activation_backward(BinaryOp op) {
  return op == BinaryOp::ReluBackward || op == BinaryOp::GeluTanhBackward || op == BinaryOp::GeluErfBackward ||
         op == BinaryOp::TanhBackward || op == BinaryOp::SigmoidBackward;
}

template <typename C>
struct Arithmetic {
  BinaryOp op;
  int* division_by_zero;  // set when an integer division meets a zero divisor

  __device__ C operator()(C x, C y) const {
    switch (op) {
      case BinaryOp::Add: return x + y;
      case BinaryOp::Sub: return x - y;
      case BinaryOp::Mul: return x * y;
      case BinaryOp::Div:
        if constexpr (std::is_integral_v<C>) {
          if (y == 0) {
            *division_by_zero = 1;
            return C(0);
          }
        }
        return x / y;
      case BinaryOp::Pow:
        if constexpr (std::is_integral_v<C>) return integer_power(x, y);  // exact, as on the CPU
        else return math::pow(x, y);
      case BinaryOp::Maximum: return (x != x || x > y) ? x : y;  // NaN propagates
      case BinaryOp::Minimum: return (x != x || x < y) ? x : y;
      default: break;
    }
    if constexpr (std::is_floating_point_v<C>) {
      switch (op) {
        case BinaryOp::ReluBackward: return x > C(0) ? y : C(0);
        case BinaryOp::GeluTanhBackward: {
          C inner = C(kSqrt2OverPi) * (x + C(kGeluCoefficient) * x * x * x);
          C tanh_inner = math::tanh(inner);
          C derivative_inner = C(kSqrt2OverPi) * (C(1) + C(3 * kGeluCoefficient) * x * x);
          C derivative = C(0.5) * (C(1) + tanh_inner) + C(0.5) * x * (C(1) - tanh_inner * tanh_inner) * derivative_inner;
          return y * derivative;
        }
        case BinaryOp::GeluErfBackward: {
          C cdf = C(0.5) * (C(1) + math::erf(x * C(kInvSqrt2)));
          C pdf = C(kInvSqrt2Pi) * math::exp(C(-0.5) * x * x);
          return y * (cdf + x * pdf);
        }
        case BinaryOp::TanhBackward: return y * (C(1) - x * x);      // x: the forward output
        case BinaryOp::SigmoidBackward: return y * x * (C(1) - x);  // x: the forward output
        default: break;
      }
    }
    return C(0);  // unreachable: the host checks the op against the dtype before launching
  }
};

template <typename C>
struct Comparison {
  BinaryOp op;
  __device__ bool operator()(C x, C y) const {
    switch (op) {
      case BinaryOp::Eq: return x == y;
      case BinaryOp::Ne: return x != y;
      case BinaryOp::Lt: return x < y;
      case BinaryOp::Le: return x <= y;
      case BinaryOp::Gt: return x > y;
      default: return x >= y;  // Ge
    }
  }
};

}  // namespace

void CudaBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  LaunchContext context(out.device());
  visit_dtype(a.dtype(), [&]<typename T>() {
    using C = compute_t<T>;
    if (is_comparison(op)) {
      map2<bool, T, T>(context, out, a, b, Comparison<C>{op}, binary_op_name(op));
    } else if constexpr (std::is_same_v<T, bool>) {
      fail("binary kernel '", binary_op_name(op), "' is not defined for bool tensors");
    } else {
      if (is_activation_backward(op) && !std::is_floating_point_v<C>) {
        fail("binary kernel '", binary_op_name(op), "' is not defined for dtype ", a.dtype());
      }
      if (std::is_integral_v<C> && op == BinaryOp::Div) {
        // The flag is read back after the kernel: an integer division by zero raises, as on the CPU.
        ScratchBuffer flag(out.device().index, sizeof(int));
        DTRAIN_CUDA_CHECK(cudaMemsetAsync(flag.data(), 0, sizeof(int), context.stream));
        map2<T, T, T>(context, out, a, b, Arithmetic<C>{op, static_cast<int*>(flag.data())}, "div");
        int division_by_zero = 0;
        DTRAIN_CUDA_CHECK(cudaMemcpyAsync(&division_by_zero, flag.data(), sizeof(int), cudaMemcpyDeviceToHost, context.stream));
        profiler::detail::host_synchronization("integer division check");
        DTRAIN_CUDA_CHECK(cudaStreamSynchronize(context.stream));
        if (division_by_zero != 0) fail("div: integer division by zero");
      } else {
        map2<T, T, T>(context, out, a, b, Arithmetic<C>{op, nullptr}, binary_op_name(op));
      }
    }
  });
}

}  // namespace dtrain::cuda
