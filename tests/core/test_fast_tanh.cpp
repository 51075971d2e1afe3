// The vectorisable float tanh (core/cpu/fast_tanh.h) against the library's tanh evaluated in
// double, in ulps, and the float32 tanh and GELU-tanh kernels (forward and backward) that use it.
#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <vector>

#include "core/core.h"
#include "core/cpu/fast_tanh.h"

using namespace dtrain;

namespace {

// Distance in representable floats between a and b (of one sign, or both near zero).
int64_t ulp_distance(float a, float b) {
  auto ordered = [](float v) {
    int64_t bits = std::bit_cast<int32_t>(v);
    return bits < 0 ? int64_t{INT32_MIN} - bits : bits;  // monotonic over all floats
  };
  return std::llabs(ordered(a) - ordered(b));
}

float reference_tanh(float x) { return static_cast<float>(std::tanh(static_cast<double>(x))); }

double reference_gelu_tanh(double x) {
  return 0.5 * x * (1 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}

double reference_gelu_tanh_derivative(double x) {
  const double inner = 0.7978845608028654 * (x + 0.044715 * x * x * x);
  const double t = std::tanh(inner);
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * 0.7978845608028654 * (1 + 3 * 0.044715 * x * x);
}

// Every 61st float of [0, limit] by bit pattern (about 17 million values up to 20), both signs.
template <typename Check>
void for_floats_up_to(float limit, Check check) {
  const uint32_t last = std::bit_cast<uint32_t>(limit);
  for (uint32_t bits = 0; bits <= last; bits += 61) {
    const float x = std::bit_cast<float>(bits);
    check(x);
    check(-x);
  }
}

}  // namespace

TEST_CASE("fast_tanh is within 2 ulp of tanh for every sampled float, and exact at the edges") {
  int64_t worst = 0;
  float worst_x = 0;
  for_floats_up_to(20.0f, [&](float x) {
    const int64_t distance = ulp_distance(cpu::fast_tanh(x), reference_tanh(x));
    if (distance > worst) {
      worst = distance;
      worst_x = x;
    }
  });
  INFO("worst input " << worst_x << ": " << worst << " ulp");
  REQUIRE(worst <= 2);

  // Around the switch from the polynomial to the exponential form.
  const float switch_point = 0.625f;
  for (float x = std::nextafter(switch_point, 0.0f), k = 0; k < 64; ++k, x = std::nextafter(x, 1.0f)) {
    REQUIRE(ulp_distance(cpu::fast_tanh(x), reference_tanh(x)) <= 2);
  }
  // Odd, saturating, exact at zero, NaN stays NaN.
  REQUIRE(std::bit_cast<uint32_t>(cpu::fast_tanh(-0.0f)) == std::bit_cast<uint32_t>(-0.0f));
  REQUIRE(cpu::fast_tanh(0.0f) == 0.0f);
  REQUIRE(cpu::fast_tanh(1e-30f) == 1e-30f);
  REQUIRE(cpu::fast_tanh(std::numeric_limits<float>::denorm_min()) == std::numeric_limits<float>::denorm_min());
  REQUIRE(cpu::fast_tanh(50.0f) == 1.0f);
  REQUIRE(cpu::fast_tanh(-1e30f) == -1.0f);
  REQUIRE(cpu::fast_tanh(std::numeric_limits<float>::infinity()) == 1.0f);
  REQUIRE(cpu::fast_tanh(-std::numeric_limits<float>::infinity()) == -1.0f);
  REQUIRE(std::isnan(cpu::fast_tanh(std::numeric_limits<float>::quiet_NaN())));
  REQUIRE(cpu::fast_tanh(-3.0f) == -cpu::fast_tanh(3.0f));
}

TEST_CASE("float32 tanh and GELU-tanh kernels, forward and backward, on vectorised and strided paths") {
  // A ramp over [-8, 8): long enough for the vector loop, odd-sized so the tail runs too.
  const int64_t count = 4099;
  std::vector<float> values(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) values[i] = -8.0f + 16.0f * static_cast<float>(i) / static_cast<float>(count);
  const Tensor contiguous_x = from_vector(values, {count});
  // The same values as a strided view: every other element of a [count, 2] tensor's column.
  const Tensor strided_x = stack({contiguous_x, zeros_like(contiguous_x)}, 1).select(1, 0);
  REQUIRE_FALSE(strided_x.is_contiguous());

  for (const Tensor& input : {contiguous_x, strided_x}) {
    const std::vector<float> tanh_out = tanh(input).to_vector<float>();
    const std::vector<float> gelu_out = gelu(input, GeluApproximation::Tanh).to_vector<float>();
    Tensor x = input.detach();
    x.set_requires_grad();
    gelu(x, GeluApproximation::Tanh).sum().backward();
    const std::vector<float> gelu_grad = x.grad().to_vector<float>();
    for (int64_t i = 0; i < count; ++i) {
      const double v = values[i];
      REQUIRE(ulp_distance(tanh_out[i], reference_tanh(values[i])) <= 2);
      // GELU rounds several float ops around tanh: a relative bound plus a floor near its zero.
      REQUIRE(gelu_out[i] == Approx(reference_gelu_tanh(v)).epsilon(2e-6).margin(1e-7));
      REQUIRE(gelu_grad[i] == Approx(reference_gelu_tanh_derivative(v)).epsilon(2e-6).margin(1e-6));
    }
  }
}
