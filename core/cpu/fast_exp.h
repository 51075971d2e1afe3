#pragma once
// exp for float without branches or library calls, so that loops over it vectorise (std::exp does
// not without -ffast-math). Cephes' expf: x = n ln2 + r with |r| <= ln2 / 2, a degree-6
// polynomial for e^r, and 2^n built in the exponent bits. Within about 1 ulp of std::exp for
// normal results; results below FLT_MIN (x < -87.34) flush to 0, which softmax never notices.
#include <bit>
#include <cmath>
#include <cstdint>

namespace dtrain::cpu {

// Always inlined: a call per element would keep the loops around it scalar.
[[gnu::always_inline]] inline float fast_exp(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2High = 0.693359375f;  // ln 2 split in two so that n * kLn2High is exact
  constexpr float kLn2Low = -2.12194440e-4f;
  constexpr float kHighest = 88.3762626647949f;   // above: overflow to inf
  constexpr float kLowest = -87.3365447504019f;   // below: flush to 0
  constexpr float kRoundingShift = 12582912.0f;   // 1.5 * 2^23: adding it rounds to an integer
  constexpr int32_t kInfinityBits = 0x7f800000;
  // The special cases are picked with integer masks on the bit pattern, not with float compares
  // or ?: — under GCC's default -ftrapping-math either keeps the loop scalar (a compare may raise
  // an exception, and a select lets the float math sink into a branch it will not speculate).
  const int32_t bits = std::bit_cast<int32_t>(x);
  const int32_t magnitude = bits & 0x7fffffff;
  const int32_t nan_mask = -static_cast<int32_t>(magnitude > kInfinityBits);
  const int32_t below_mask = -static_cast<int32_t>((bits < 0) & (magnitude > std::bit_cast<int32_t>(-kLowest)));
  const int32_t above_mask = -static_cast<int32_t>((bits >= 0) & (magnitude > std::bit_cast<int32_t>(kHighest)));
  const int32_t in_range_mask = ~(below_mask | above_mask);  // a NaN is below or above, by its sign
  const float clamped = std::bit_cast<float>((bits & in_range_mask) | (std::bit_cast<int32_t>(kLowest) & below_mask) |
                                             (std::bit_cast<int32_t>(kHighest) & above_mask));
  const float n = (clamped * kLog2e + kRoundingShift) - kRoundingShift;
  const float r = (clamped - n * kLn2High) - n * kLn2Low;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const float scale = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  const int32_t result = std::bit_cast<int32_t>(p * scale);
  // In range: the result; below: 0; above: inf; NaN: itself.
  return std::bit_cast<float>((((result & in_range_mask) | (kInfinityBits & above_mask)) & ~nan_mask) | (bits & nan_mask));
}

inline double fast_exp(double x) { return std::exp(x); }  // float64 keeps the library's exp (gradcheck runs there)

}  // namespace dtrain::cpu
