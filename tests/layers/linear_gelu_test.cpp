// linear_gelu: on the CPU exactly gelu(linear(...)), values and gradients, bit for bit (it runs the
// same kernels in the same order as one node), for both GELU forms, with and without bias.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <vector>

#include "core/core.h"
#include "layers/linear.h"

using namespace dtrain;

namespace {

Tensor leaf(const Shape& shape, double phase) {
  std::vector<double> values(static_cast<size_t>(shape.numel()));
  for (size_t i = 0; i < values.size(); ++i) values[i] = std::sin(0.613 * static_cast<double>(i) + phase);
  return from_vector(values, shape, {.dtype = kFloat32}).set_requires_grad(true);
}

void require_same_bits(const Tensor& a, const Tensor& b) {
  const std::vector<float> left = a.to_vector<float>(), right = b.to_vector<float>();
  REQUIRE(left.size() == right.size());
  for (size_t i = 0; i < left.size(); ++i) {
    INFO("element " << i);
    REQUIRE(left[i] == right[i]);
  }
}

}  // namespace

TEST_CASE("linear_gelu equals gelu of linear bit for bit, forward and backward", "[layers][linear]") {
  for (GeluApproximation approximation : {GeluApproximation::Tanh, GeluApproximation::None}) {
    for (bool with_bias : {true, false}) {
      DYNAMIC_SECTION("tanh " << (approximation == GeluApproximation::Tanh) << " bias " << with_bias) {
        Tensor x1 = leaf({2, 3, 6}, 0.1), w1 = leaf({5, 6}, 0.7), b1 = with_bias ? leaf({5}, 1.3) : Tensor();
        Tensor x2 = leaf({2, 3, 6}, 0.1), w2 = leaf({5, 6}, 0.7), b2 = with_bias ? leaf({5}, 1.3) : Tensor();
        Tensor fused = linear_gelu(x1, w1, b1, approximation);
        Tensor separate = gelu(linear(x2, w2, b2), approximation);
        REQUIRE(fused.shape() == Shape{2, 3, 5});
        require_same_bits(fused, separate);
        const Tensor upstream = leaf({2, 3, 5}, 2.0).detach();
        sum(mul(fused, upstream)).backward();
        sum(mul(separate, upstream)).backward();
        require_same_bits(x1.grad(), x2.grad());
        require_same_bits(w1.grad(), w2.grad());
        if (with_bias) require_same_bits(b1.grad(), b2.grad());
      }
    }
  }
}

TEST_CASE("linear_gelu raises for mismatched shapes like linear", "[layers][linear]") {
  Tensor x = zeros({2, 4}), w = zeros({3, 5});
  CHECK_THROWS_WITH(linear_gelu(x, w, Tensor()), Catch::Contains("linear_gelu: expected input [..., 5]"));
}
