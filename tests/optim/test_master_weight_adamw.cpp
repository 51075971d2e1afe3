// MasterWeightAdamW on the CPU: a bfloat16 model with float32 masters steps its masters exactly as
// optim::AdamW steps a float32 model given the same (bfloat16-valued) gradients — the same fused
// loop, bit for bit — and its parameters hold the masters rounded to bfloat16.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "optim/optim.h"
#include "tests/optim/optim_test_support.h"

using namespace dtrain;
using namespace dtrain::optim::testing;

namespace {

std::vector<double> wave(size_t n, double phase, double scale) {
  std::vector<double> values(n);
  for (size_t i = 0; i < n; ++i) values[i] = scale * std::sin(0.57 * static_cast<double>(i) + phase);
  return values;
}

}  // namespace

TEST_CASE("MasterWeightAdamW steps float32 masters as AdamW steps a float32 model", "[optim][master]") {
  const optim::AdamWOptions options{.lr = 1e-2, .betas = {0.9, 0.95}, .eps = 1e-8, .weight_decay = 0.1};
  const std::vector<double> start_a = wave(37, 0.2, 1.0), start_b = wave(5, 1.1, 0.5);
  // The bfloat16 model and its float32 reference start from the same (bfloat16) values.
  Tensor low_a = parameter(start_a, kBFloat16), low_b = parameter(start_b, kBFloat16);
  Tensor full_a = parameter(values_of(low_a), kFloat32), full_b = parameter(values_of(low_b), kFloat32);
  optim::MasterWeightAdamW mixed({low_a, low_b}, options);
  optim::AdamW reference({full_a, full_b}, options);
  for (int step = 0; step < 3; ++step) {
    const std::vector<double> grad_a = wave(37, 0.4 * step, 0.3), grad_b = wave(5, 0.9 + step, 0.2);
    set_gradient(low_a, grad_a);
    set_gradient(low_b, grad_b);
    // The reference sees the gradients the bfloat16 model has: rounded to bfloat16.
    set_gradient(full_a, values_of(low_a.grad()));
    set_gradient(full_b, values_of(low_b.grad()));
    mixed.step();
    reference.step();
  }
  REQUIRE(mixed.steps() == 3);
  REQUIRE(mixed.master(0).dtype() == kFloat32);
  CHECK(values_of(mixed.master(0)) == values_of(full_a));  // bit for bit
  CHECK(values_of(mixed.master(1)) == values_of(full_b));
  CHECK(values_of(low_a) == values_of(full_a.detach().to(kBFloat16)));
  CHECK(values_of(low_b) == values_of(full_b.detach().to(kBFloat16)));
}

TEST_CASE("MasterWeightAdamW skips parameters without a gradient and zero_grad clears them", "[optim][master]") {
  Tensor with_grad = parameter({1.0, -2.0}, kBFloat16), without_grad = parameter({3.0}, kBFloat16);
  optim::MasterWeightAdamW optimizer({with_grad, without_grad}, {.lr = 0.1, .weight_decay = 0.0});
  set_gradient(with_grad, {0.5, -0.5});
  optimizer.step();
  // Adam's first step moves each element by lr against the gradient's sign (eps aside).
  check_close(values_of(optimizer.master(0)), {0.9, -1.9}, 1e-6);
  CHECK(values_of(without_grad) == std::vector<double>{3.0});
  optimizer.zero_grad();
  CHECK_FALSE(with_grad.grad().defined());
}

TEST_CASE("MasterWeightAdamW refuses integer parameters naming the parameter", "[optim][master]") {
  Tensor integers = from_vector(std::vector<int64_t>{1, 2}, {2}, {.dtype = kInt64});
  CHECK_THROWS_WITH(optim::MasterWeightAdamW({integers}), Catch::Contains("parameter 0") && Catch::Contains("int64"));
}
