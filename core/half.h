#pragma once
// 16-bit floating types stored as raw bits. Arithmetic happens in float: each op converts in,
// computes in float and rounds back (round-to-nearest-even, core/half_bits.h), as PyTorch does on CPU.
#include <cstdint>

#include "core/half_bits.h"

namespace dtrain {

struct bfloat16 {
  uint16_t bits = 0;
  bfloat16() = default;
  bfloat16(float value) : bits(from_float(value)) {}  // NOLINT: implicit like a builtin float
  operator float() const { return detail::bfloat16_value(bits); }  // NOLINT
  static uint16_t from_float(float value) { return detail::bfloat16_bits(value); }
};

struct float16 {
  uint16_t bits = 0;
  float16() = default;
  float16(float value) : bits(from_float(value)) {}  // NOLINT
  operator float() const { return to_float(bits); }  // NOLINT
  static float to_float(uint16_t half) { return detail::float16_value(half); }
  static uint16_t from_float(float value) { return detail::float16_bits(value); }
};

}  // namespace dtrain
