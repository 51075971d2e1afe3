#pragma once
// 16-bit floating types stored as raw bits. Arithmetic happens in float: each op converts in,
// computes in float and rounds back (round-to-nearest-even), as PyTorch does on CPU.
#include <cstdint>
#include <cstring>

namespace dtrain {

struct bfloat16 {
  uint16_t bits = 0;
  bfloat16() = default;
  bfloat16(float value) : bits(from_float(value)) {}  // NOLINT: implicit like a builtin float
  operator float() const {                            // NOLINT
    uint32_t word = static_cast<uint32_t>(bits) << 16;
    float value;
    std::memcpy(&value, &word, sizeof(value));
    return value;
  }
  static uint16_t from_float(float value) {
    uint32_t word;
    std::memcpy(&word, &value, sizeof(word));
    if ((word & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((word >> 16) | 0x40u);  // quiet NaN
    uint32_t rounding_bias = 0x7fffu + ((word >> 16) & 1u);
    return static_cast<uint16_t>((word + rounding_bias) >> 16);
  }
};

struct float16 {
  uint16_t bits = 0;
  float16() = default;
  float16(float value) : bits(from_float(value)) {}  // NOLINT
  operator float() const { return to_float(bits); }  // NOLINT

  static float to_float(uint16_t half) {
    uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
    uint32_t exponent = (half >> 10) & 0x1fu;
    uint32_t mantissa = half & 0x3ffu;
    uint32_t word;
    if (exponent == 0) {
      if (mantissa == 0) {
        word = sign;
      } else {  // subnormal half: normalise into a float
        exponent = 127 - 15 + 1;
        while ((mantissa & 0x400u) == 0) {
          mantissa <<= 1;
          --exponent;
        }
        mantissa &= 0x3ffu;
        word = sign | (exponent << 23) | (mantissa << 13);
      }
    } else if (exponent == 0x1f) {
      word = sign | 0x7f800000u | (mantissa << 13);
    } else {
      word = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
    }
    float value;
    std::memcpy(&value, &word, sizeof(value));
    return value;
  }

  static uint16_t from_float(float value) {
    uint32_t word;
    std::memcpy(&word, &value, sizeof(word));
    uint32_t sign = (word >> 16) & 0x8000u;
    uint32_t magnitude = word & 0x7fffffffu;
    if (magnitude > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
    if (magnitude >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
    if (magnitude < 0x38800000u) {  // result is subnormal or zero in half
      if (magnitude < 0x33000000u) return static_cast<uint16_t>(sign);  // below half the smallest subnormal
      uint32_t exponent = magnitude >> 23;
      uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;
      uint32_t shift = 126 - exponent;  // drops the bits below the smallest half subnormal
      uint32_t half_mantissa = mantissa >> shift;
      uint32_t remainder = mantissa & ((1u << shift) - 1u);
      uint32_t halfway = 1u << (shift - 1);
      if (remainder > halfway || (remainder == halfway && (half_mantissa & 1u))) ++half_mantissa;
      return static_cast<uint16_t>(sign | half_mantissa);
    }
    uint32_t rounded = magnitude + 0xfffu + ((magnitude >> 13) & 1u);  // round to nearest even
    uint32_t half = ((rounded >> 13) - ((127 - 15) << 10));
    return static_cast<uint16_t>(sign | half);
  }
};

}  // namespace dtrain
