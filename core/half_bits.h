#pragma once
// Bit-level conversions between float and the 16-bit floats: round-to-nearest-even, one NaN
// pattern each. One copy for the CPU (core/half.h) and the CUDA kernels (cuda/kernels/element.cuh),
// so that a tensor holds the same bits on either device.
#include <cstdint>

#include "core/host_device.h"

namespace dtrain::detail {

DTRAIN_HOST_DEVICE inline uint32_t float_to_bits(float value) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(value);
#else
  uint32_t word;
  __builtin_memcpy(&word, &value, sizeof(word));
  return word;
#endif
}

DTRAIN_HOST_DEVICE inline float bits_to_float(uint32_t word) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(word);
#else
  float value;
  __builtin_memcpy(&value, &word, sizeof(value));
  return value;
#endif
}

DTRAIN_HOST_DEVICE inline uint16_t bfloat16_bits(float value) {
  uint32_t word = float_to_bits(value);
  if ((word & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((word >> 16) | 0x40u);  // quiet NaN
  uint32_t rounding_bias = 0x7fffu + ((word >> 16) & 1u);
  return static_cast<uint16_t>((word + rounding_bias) >> 16);
}

DTRAIN_HOST_DEVICE inline float bfloat16_value(uint16_t bits) { return bits_to_float(static_cast<uint32_t>(bits) << 16); }

DTRAIN_HOST_DEVICE inline float float16_value(uint16_t half) {
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
  return bits_to_float(word);
}

DTRAIN_HOST_DEVICE inline uint16_t float16_bits(float value) {
  uint32_t word = float_to_bits(value);
  uint32_t sign = (word >> 16) & 0x8000u;
  uint32_t magnitude = word & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (magnitude >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (magnitude < 0x38800000u) {  // subnormal or zero in half
    if (magnitude < 0x33000000u) return static_cast<uint16_t>(sign);
    uint32_t exponent = magnitude >> 23;
    uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - exponent;
    uint32_t half_mantissa = mantissa >> shift;
    uint32_t remainder = mantissa & ((1u << shift) - 1u);
    uint32_t halfway = 1u << (shift - 1);
    if (remainder > halfway || (remainder == halfway && (half_mantissa & 1u))) ++half_mantissa;
    return static_cast<uint16_t>(sign | half_mantissa);
  }
  uint32_t rounded = magnitude + 0xfffu + ((magnitude >> 13) & 1u);
  uint32_t half = ((rounded >> 13) - ((127 - 15) << 10));
  return static_cast<uint16_t>(sign | half);
}

}  // namespace dtrain::detail
