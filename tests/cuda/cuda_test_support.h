#pragma once
// Shared by the GPU tests: deterministic inputs, per-dtype tolerances and CPU-vs-CUDA comparison.
//
// Tolerances (relative, absolute), for results computed by the same formula on both devices:
//   float64  1e-12, 1e-12   (the device's exp/log/tanh are within an ulp or two of glibc's)
//   float32  2e-5,  1e-6    (the CPU's fast_exp/fast_tanh are within 2 ulp; sums are in double)
//   bfloat16 1e-2,  1e-2    (one bf16 ulp is 2^-8 relative: a float result a hair across a
//   float16  2e-3,  2e-3     rounding boundary rounds one ulp apart)
//   integers and bool: exact
// Tests with longer accumulations in float (matmul) widen these and say so.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "core/core.h"

namespace dtrain::cuda_test {

inline Device gpu() { return Device::cuda(0); }

// Values in [-scale, scale] that vary smoothly and never repeat exactly: sin of the position.
inline Tensor wavy(const Shape& shape, DType dtype = kFloat32, double scale = 2.0, double phase = 0.3) {
  std::vector<double> values(static_cast<size_t>(shape.numel()));
  for (size_t i = 0; i < values.size(); ++i) values[i] = scale * std::sin(0.731 * static_cast<double>(i) + phase);
  return from_vector(values, shape, {.dtype = kFloat64}).to(dtype);
}

// Integers in [low, high), spread by a fixed hash of the position.
inline Tensor integers(const Shape& shape, int64_t low, int64_t high, DType dtype = kInt64, uint64_t salt = 0) {
  std::vector<int64_t> values(static_cast<size_t>(shape.numel()));
  for (size_t i = 0; i < values.size(); ++i) {
    uint64_t hash = (static_cast<uint64_t>(i) + salt + 1) * 0x9E3779B97F4A7C15ull;
    hash ^= hash >> 29;
    values[i] = low + static_cast<int64_t>(hash % static_cast<uint64_t>(high - low));
  }
  return from_vector(values, shape, {.dtype = kInt64}).to(dtype);
}

struct Tolerance {
  double relative = 0.0;
  double absolute = 0.0;
};

inline Tolerance tolerance_for(DType dtype) {
  switch (dtype) {
    case DType::Float64: return {1e-12, 1e-12};
    case DType::Float32: return {2e-5, 1e-6};
    case DType::BFloat16: return {1e-2, 1e-2};
    case DType::Float16: return {2e-3, 2e-3};
    default: return {0.0, 0.0};
  }
}

inline bool is_16_bit(DType dtype) { return dtype == kBFloat16 || dtype == kFloat16; }

// The dtype the CPU reference computes in for the fused-kernel tests (16-bit results are checked
// against float64).
inline DType reference_dtype(DType dtype) { return is_16_bit(dtype) ? kFloat64 : dtype; }

// For fused kernels: row sums of a few hundred float terms round differently on the two devices.
inline Tolerance fused_tolerance(DType dtype) {
  if (dtype == kFloat32) return {1e-4, 1e-5};
  return tolerance_for(dtype);
}

inline const std::vector<DType>& floating_dtypes() {
  static const std::vector<DType> dtypes{kFloat32, kFloat64, kBFloat16, kFloat16};
  return dtypes;
}
inline const std::vector<DType>& numeric_dtypes() {
  static const std::vector<DType> dtypes{kFloat32, kFloat64, kBFloat16, kFloat16, kInt32, kInt64};
  return dtypes;
}
inline const std::vector<DType>& all_dtypes() {
  static const std::vector<DType> dtypes{kFloat32, kFloat64, kBFloat16, kFloat16, kInt32, kInt64, kBool};
  return dtypes;
}

// Requires the CUDA result to match the CPU one: same shape and dtype, every value within
// tolerance (NaN where the other is NaN, infinities equal). Reports the first mismatch.
inline void require_match(const Tensor& cuda_result, const Tensor& cpu_result, Tolerance tolerance, const std::string& what) {
  INFO(what);
  REQUIRE(cuda_result.device().is_cuda());
  REQUIRE(cuda_result.shape() == cpu_result.shape());
  REQUIRE(cuda_result.dtype() == cpu_result.dtype());
  const std::vector<double> got = cuda_result.to_vector<double>();
  const std::vector<double> expected = cpu_result.to_vector<double>();
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], e = expected[i];
    bool same;
    if (std::isnan(e) || std::isnan(g)) same = std::isnan(e) && std::isnan(g);
    else if (std::isinf(e) || std::isinf(g)) same = g == e;
    else same = std::fabs(g - e) <= tolerance.absolute + tolerance.relative * std::fabs(e);
    if (!same) {
      std::ostringstream message;
      message << what << ": element " << i << " of " << got.size() << " is " << g << " on CUDA, " << e << " on the CPU ("
              << cpu_result.dtype() << ", shape " << cpu_result.shape() << ")";
      FAIL(message.str());
    }
  }
  SUCCEED();
}

inline void require_match(const Tensor& cuda_result, const Tensor& cpu_result, const std::string& what) {
  require_match(cuda_result, cpu_result, tolerance_for(cpu_result.dtype()), what);
}

// A fresh tensor with x's values and a non-contiguous layout (a transposed copy seen back in x's
// shape), to exercise strided kernel paths. x must have at least 2 dims.
inline Tensor strided_copy(const Tensor& x) {
  Tensor swapped = x.transpose(0, x.dim() - 1).contiguous();
  return swapped.transpose(0, x.dim() - 1);
}

}  // namespace dtrain::cuda_test
