#pragma once
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>

#include "core/half.h"

namespace dtrain {

// Element types. Bool is what comparisons return (one byte per element).
enum class DType : uint8_t { Float32, Float64, BFloat16, Float16, Int32, Int64, Bool };

inline constexpr DType kFloat32 = DType::Float32;
inline constexpr DType kFloat64 = DType::Float64;
inline constexpr DType kBFloat16 = DType::BFloat16;
inline constexpr DType kFloat16 = DType::Float16;
inline constexpr DType kInt32 = DType::Int32;
inline constexpr DType kInt64 = DType::Int64;
inline constexpr DType kBool = DType::Bool;

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);  // "float32", ... as PyTorch and safetensors' lower-case names
bool is_floating(DType dtype);
bool is_integral(DType dtype);  // Int32, Int64 (not Bool)
// The dtype of a binary op's result: float beats integer beats bool, wider beats narrower,
// bf16 with f16 gives f32 (as torch.result_type).
DType promote_types(DType a, DType b);
std::ostream& operator<<(std::ostream& stream, DType dtype);

template <typename T>
struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = kFloat32; };
template <> struct dtype_of<double> { static constexpr DType value = kFloat64; };
template <> struct dtype_of<bfloat16> { static constexpr DType value = kBFloat16; };
template <> struct dtype_of<float16> { static constexpr DType value = kFloat16; };
template <> struct dtype_of<int32_t> { static constexpr DType value = kInt32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = kInt64; };
template <> struct dtype_of<bool> { static constexpr DType value = kBool; };

// Calls fn.template operator()<T>() with T the C++ type of dtype.
template <typename Fn>
decltype(auto) visit_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::Float32: return fn.template operator()<float>();
    case DType::Float64: return fn.template operator()<double>();
    case DType::BFloat16: return fn.template operator()<bfloat16>();
    case DType::Float16: return fn.template operator()<float16>();
    case DType::Int32: return fn.template operator()<int32_t>();
    case DType::Int64: return fn.template operator()<int64_t>();
    case DType::Bool: return fn.template operator()<bool>();
  }
  return fn.template operator()<float>();  // unreachable: every enumerator is handled above
}

// The type arithmetic on T is done in: float for the 16-bit floats, T otherwise.
template <typename T> struct compute_type { using type = T; };
template <> struct compute_type<bfloat16> { using type = float; };
template <> struct compute_type<float16> { using type = float; };
template <typename T> using compute_t = typename compute_type<T>::type;

}  // namespace dtrain
