// LayerNorm, ReLU, GELU, Dropout, Flatten and Sequential.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "tests/layers/layer_test_helpers.h"

using namespace dtrain;
using dtrain::test::random_tensor;
using dtrain::test::require_gradcheck;
using dtrain::test::require_module_gradcheck;
using Catch::Matchers::Contains;

namespace {

// Affine parameters that are not 1 and 0, so a wrong broadcast shows.
void perturb_affine(LayerNorm& norm, uint64_t seed) {
  NoGradGuard no_grad;
  Generator generator(seed);
  Tensor weight = norm.weight(), bias = norm.bias();  // handles on the module's parameters
  weight.copy_(randn(weight.shape(), {.dtype = weight.dtype()}, &generator));
  bias.copy_(randn(bias.shape(), {.dtype = bias.dtype()}, &generator));
}

}  // namespace

TEST_CASE("LayerNorm normalises with the biased variance, then scales and shifts") {
  LayerNorm norm(5, 1e-5);
  REQUIRE(equal(norm.weight(), ones({5})));
  REQUIRE(equal(norm.bias(), zeros({5})));
  perturb_affine(norm, 20);
  Generator generator(21);
  Tensor x = add(mul(randn({2, 3, 5}, {}, &generator), 3.0), 1.5);
  std::vector<float> xs = x.to_vector<float>(), ys = norm(x).to_vector<float>();
  std::vector<float> w = norm.weight().to_vector<float>(), b = norm.bias().to_vector<float>();
  for (int row = 0; row < 6; ++row) {
    double mean = 0.0, variance = 0.0;
    for (int i = 0; i < 5; ++i) mean += xs[row * 5 + i] / 5.0;
    for (int i = 0; i < 5; ++i) variance += (xs[row * 5 + i] - mean) * (xs[row * 5 + i] - mean) / 5.0;
    for (int i = 0; i < 5; ++i) {
      double expected = (xs[row * 5 + i] - mean) / std::sqrt(variance + 1e-5) * w[i] + b[i];
      REQUIRE(ys[row * 5 + i] == Approx(expected).epsilon(1e-4).margin(1e-5));
    }
  }
}

TEST_CASE("LayerNorm over two trailing dims, and without affine parameters") {
  LayerNorm norm(Shape{2, 3});
  Tensor x = randn({4, 2, 3});
  Tensor y = norm(x);
  REQUIRE(allclose(mean(y, {1, 2}), zeros({4}), 1e-5, 1e-5));
  REQUIRE(allclose(var(y, {1, 2}, 0), ones({4}), 1e-3, 1e-3));
  LayerNorm plain(3, 1e-5, false);
  REQUIRE(plain.parameters().empty());
  REQUIRE(allclose(plain(x), detail::layer_norm_composed(x, {3}, Tensor(), Tensor(), 1e-5), 1e-5, 1e-5));
  REQUIRE_THROWS_WITH(norm(zeros({4, 3, 2})), Contains("[2, 3]") && Contains("[4, 3, 2]"));
}

TEST_CASE("LayerNorm gradcheck w.r.t. input, weight and bias") {
  LayerNorm norm(Shape{2, 3});
  norm.to(kFloat64);
  perturb_affine(norm, 22);
  require_module_gradcheck(norm, random_tensor({3, 2, 3}, 23));
  LayerNorm plain(4, 1e-5, false);
  require_module_gradcheck(plain, random_tensor({2, 4}, 24));
  SECTION("the composed path used off the CPU fast path is right too") {
    require_gradcheck(
        [&norm](const std::vector<Tensor>& in) {
          return detail::layer_norm_composed(in[0], {2, 3}, norm.weight(), norm.bias(), 1e-5);
        },
        {random_tensor({3, 2, 3}, 25), norm.weight(), norm.bias()});
  }
}

TEST_CASE("the fused LayerNorm matches the composed one in float32, values and gradients") {
  Generator generator(26);
  Tensor x = randn({130, 48}, {}, &generator).set_requires_grad(true);  // more rows than one gradient block
  Tensor weight = randn({48}, {}, &generator).set_requires_grad(true);
  Tensor bias = randn({48}, {}, &generator).set_requires_grad(true);
  Tensor upstream = randn({130, 48}, {}, &generator);
  Tensor fused = layer_norm(x, {48}, weight, bias);
  Tensor composed = detail::layer_norm_composed(x, {48}, weight, bias, 1e-5);
  REQUIRE(allclose(fused, composed, 1e-4, 1e-5));
  std::vector<Tensor> fused_grads = autograd::grad({fused}, {x, weight, bias}, {upstream});
  std::vector<Tensor> composed_grads = autograd::grad({composed}, {x, weight, bias}, {upstream});
  for (size_t i = 0; i < 3; ++i) REQUIRE(allclose(fused_grads[i], composed_grads[i], 1e-3, 1e-4));
}

TEST_CASE("ReLU and GELU (erf and tanh) values and gradchecks") {
  std::vector<double> inputs{-3.0, -1.0, -0.25, 0.0, 0.5, 2.0};
  Tensor x = from_vector(inputs, {6}).to(kFloat32);
  std::vector<float> relu_out = ReLU()(x).to_vector<float>();
  std::vector<float> erf_out = GELU()(x).to_vector<float>();
  std::vector<float> tanh_out = GELU(GeluApproximation::Tanh)(x).to_vector<float>();
  for (size_t i = 0; i < inputs.size(); ++i) {
    const double v = inputs[i];
    REQUIRE(relu_out[i] == Approx(std::max(v, 0.0)));
    REQUIRE(erf_out[i] == Approx(0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)))).margin(1e-6));
    const double inner = std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v);
    REQUIRE(tanh_out[i] == Approx(0.5 * v * (1.0 + std::tanh(inner))).margin(1e-6));
  }
  GELU erf_gelu, tanh_gelu(GeluApproximation::Tanh);
  ReLU relu_module;
  require_module_gradcheck(erf_gelu, random_tensor({2, 3}, 27));
  require_module_gradcheck(tanh_gelu, random_tensor({2, 3}, 28));
  require_module_gradcheck(relu_module, from_vector<double>({-1.5, -0.3, 0.2, 2.0}).set_requires_grad(true));
}

TEST_CASE("Dropout zeroes about p of the values and scales the rest while training, and eval is the identity") {
  Dropout drop(0.25);
  Tensor x = add(rand({100, 100}), 1.0);  // no zeros of its own
  manual_seed(29);
  Tensor y = drop(x);
  std::vector<float> xs = x.to_vector<float>(), ys = y.to_vector<float>();
  int64_t zeros_seen = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    if (ys[i] == 0.0f) ++zeros_seen;
    else REQUIRE(ys[i] == Approx(xs[i] / 0.75f));
  }
  REQUIRE(zeros_seen > 2300);
  REQUIRE(zeros_seen < 2700);
  manual_seed(29);
  REQUIRE(equal(drop(x), y));  // the mask comes from the seeded default generator

  drop.eval();
  REQUIRE(equal(drop(x), x));
  drop.train();
  REQUIRE_FALSE(equal(drop(x), x));
  REQUIRE(equal(Dropout(0.0)(x), x));
  REQUIRE_THROWS_WITH(Dropout(1.5), Contains("[0, 1]"));

  SECTION("gradcheck with a fixed mask") {
    Tensor input = random_tensor({3, 4}, 30);
    require_gradcheck(
        [&drop](const std::vector<Tensor>& in) {
          manual_seed(31);
          return drop(in[0]);
        },
        {input});
  }
}

TEST_CASE("Flatten and Sequential") {
  Tensor x = randn({2, 3, 4});
  REQUIRE(Flatten()(x).shape() == Shape{2, 12});
  REQUIRE(Flatten(0, 1)(x).shape() == Shape{6, 4});

  manual_seed(32);
  auto first = std::make_shared<Linear>(12, 5);
  auto second = std::make_shared<Linear>(5, 2);
  Sequential model(std::vector<std::shared_ptr<Module>>{std::make_shared<Flatten>(), first, std::make_shared<ReLU>(), second});
  REQUIRE(model.size() == 4);
  REQUIRE(model[1] == first);
  REQUIRE(allclose(model(x), (*second)(relu((*first)(x.reshape({2, 12}))))));
  REQUIRE_THROWS_WITH(model[4], Contains("out of range"));
  require_module_gradcheck(model, random_tensor({2, 3, 4}, 33));
}
