#pragma once
// Element types inside kernels: each stored type T is read into its compute type (float for the
// 16-bit floats, T otherwise) and written back, with the same rounding as core/half.h
// (core/half_bits.h, shared), so a CUDA tensor holds the bits a CPU one would.
#include <cstdint>
#include <type_traits>

#include "core/dtype.h"
#include "core/half_bits.h"

namespace dtrain::cuda {

using dtrain::detail::bfloat16_bits;
using dtrain::detail::bfloat16_value;
using dtrain::detail::float16_bits;
using dtrain::detail::float16_value;

// load: stored T -> compute type; store: compute type -> stored T.
template <typename T>
struct Element {
  using Compute = compute_t<T>;
  __host__ __device__ static Compute load(T value) { return value; }
  __host__ __device__ static T store(Compute value) { return value; }
};

template <>
struct Element<bfloat16> {
  using Compute = float;
  __host__ __device__ static float load(bfloat16 value) { return bfloat16_value(value.bits); }
  __host__ __device__ static bfloat16 store(float value) {
    bfloat16 result;
    result.bits = bfloat16_bits(value);
    return result;
  }
};

template <>
struct Element<float16> {
  using Compute = float;
  __host__ __device__ static float load(float16 value) { return float16_value(value.bits); }
  __host__ __device__ static float16 store(float value) {
    float16 result;
    result.bits = float16_bits(value);
    return result;
  }
};

// Converts a compute value of one type into the stored type To (bool: nonzero), as the CPU's copy.
template <typename To, typename From>
__host__ __device__ inline To convert_to(From value) {
  if constexpr (std::is_same_v<To, bool>) return value != From(0);
  else return Element<To>::store(static_cast<compute_t<To>>(value));
}

}  // namespace dtrain::cuda
