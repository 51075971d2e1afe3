#pragma once
// tanh for float without branches or library calls, so that loops over it (tanh, GELU-tanh and
// their derivatives) vectorise; glibc's tanhf is a scalar call into expm1f, and GELU-tanh made
// it a third of a GPT training step. Cephes' tanhf: for |x| < 0.625 an odd polynomial,
// x + x^3 P(x^2); above, 1 - 2 / (e^{2|x|} + 1) with fast_exp, where the subtraction loses no
// accuracy (the quotient is below 0.45). Both are computed and one is picked per element, then
// the sign of x is put back. Within 2 ulp of std::tanh (tests/core/fast_tanh_test.cpp checks
// every float in [-10, 10] and beyond); +-inf give +-1, NaN stays NaN.
#include <bit>
#include <cmath>
#include <cstdint>

#include "core/cpu/fast_exp.h"

namespace dtrain::cpu {

[[gnu::always_inline]] inline float fast_tanh(float x) {
  constexpr int32_t kSignBit = static_cast<int32_t>(0x80000000u);
  constexpr float kPolynomialBelow = 0.625f;
  const int32_t bits = std::bit_cast<int32_t>(x);
  const float a = std::bit_cast<float>(bits & ~kSignBit);  // |x|

  const float s = a * a;
  float p = -5.70498872745e-3f;
  p = p * s + 2.06390887954e-2f;
  p = p * s - 5.37397155531e-2f;
  p = p * s + 1.33314422036e-1f;
  p = p * s - 3.33332819422e-1f;
  const float small = p * s * a + a;

  // fast_exp saturates to inf for large |x| (2 / inf = 0, so 1) and passes NaN through.
  const float large = 1.0f - 2.0f / (fast_exp(a + a) + 1.0f);

  // Integer masks rather than a float compare and ?:, as in fast_exp, so the loop vectorises
  // whatever the floating-point trapping mode.
  const int32_t use_small = -static_cast<int32_t>((bits & ~kSignBit) < std::bit_cast<int32_t>(kPolynomialBelow));
  const int32_t magnitude = (std::bit_cast<int32_t>(small) & use_small) | (std::bit_cast<int32_t>(large) & ~use_small);
  return std::bit_cast<float>(magnitude | (bits & kSignBit));
}

inline double fast_tanh(double x) { return std::tanh(x); }  // float64 keeps the library's tanh (gradcheck runs there)

}  // namespace dtrain::cpu
