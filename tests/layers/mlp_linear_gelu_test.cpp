// The MLP's first layer is Linear with a GELU (linear_gelu, one node; fused into cuBLASLt epilogues on
// CUDA). On the CPU it runs the kernels of the unfused proj(gelu(fc(x))) in the same order, so the
// MLP's output and every gradient equal the unfused path's bit for bit; and its gradients pass a
// float64 gradcheck.
#include <catch2/catch.hpp>

#include <vector>

#include "core/core.h"
#include "layers/layers.h"
#include "tests/layers/layer_test_helpers.h"

using namespace dtrain;
using namespace dtrain::test;

namespace {

// The unfused MLP on copies of mlp's parameters: proj(gelu(linear(x, fc))).
struct UnfusedMlp {
  Tensor fc_weight, fc_bias, proj_weight, proj_bias;
  GeluApproximation approximation;

  UnfusedMlp(MLP& mlp, GeluApproximation gelu_form) : approximation(gelu_form) {
    auto copy = [](const Tensor& t) { return t.defined() ? t.detach().clone().set_requires_grad() : Tensor(); };
    fc_weight = copy(mlp.fc()->weight());
    fc_bias = copy(mlp.fc()->bias());
    proj_weight = copy(mlp.proj()->weight());
    proj_bias = copy(mlp.proj()->bias());
  }
  Tensor operator()(const Tensor& x) const {
    return linear(gelu(linear(x, fc_weight, fc_bias), approximation), proj_weight, proj_bias);
  }
};

template <typename T>
void require_same_bits(const Tensor& fused, const Tensor& unfused, const char* what) {
  INFO(what);
  REQUIRE(fused.defined());
  REQUIRE(unfused.defined());
  REQUIRE(fused.shape() == unfused.shape());
  REQUIRE(same_bits<T>(fused, unfused));
}

template <typename T>
void check_mlp_against_unfused(DType dtype, GeluApproximation approximation, bool bias) {
  manual_seed(91);
  MLP mlp(6, 24, approximation, 0.0, bias);
  REQUIRE(mlp.fc()->gelu() == approximation);
  REQUIRE_FALSE(mlp.proj()->gelu().has_value());
  mlp.to(dtype);
  UnfusedMlp unfused(mlp, approximation);
  const Tensor input = random_tensor({2, 5, 6}, 92, false).to(dtype);
  Tensor x1 = input.clone().set_requires_grad(), x2 = input.clone().set_requires_grad();
  Tensor fused_out = mlp(x1), unfused_out = unfused(x2);
  require_same_bits<T>(fused_out, unfused_out, "output");
  // A fixed upstream gradient, not all ones, so the column sums of the bias gradients mean something.
  const Tensor upstream = random_tensor({2, 5, 6}, 93, false).to(dtype);
  sum(mul(fused_out, upstream)).backward();
  sum(mul(unfused_out, upstream)).backward();
  require_same_bits<T>(x1.grad(), x2.grad(), "d input");
  require_same_bits<T>(mlp.fc()->weight().grad(), unfused.fc_weight.grad(), "d fc weight");
  require_same_bits<T>(mlp.proj()->weight().grad(), unfused.proj_weight.grad(), "d proj weight");
  if (bias) {
    require_same_bits<T>(mlp.fc()->bias().grad(), unfused.fc_bias.grad(), "d fc bias");
    require_same_bits<T>(mlp.proj()->bias().grad(), unfused.proj_bias.grad(), "d proj bias");
  }
}

}  // namespace

TEST_CASE("MLP with linear_gelu equals the unfused proj(gelu(fc(x))) bit for bit, output and gradients", "[layers][mlp]") {
  for (GeluApproximation approximation : {GeluApproximation::Tanh, GeluApproximation::None}) {
    for (bool bias : {true, false}) {
      DYNAMIC_SECTION("tanh " << (approximation == GeluApproximation::Tanh) << " bias " << bias) {
        check_mlp_against_unfused<float>(kFloat32, approximation, bias);
        check_mlp_against_unfused<double>(kFloat64, approximation, bias);
      }
    }
  }
}

TEST_CASE("MLP with the tanh GELU passes gradcheck in float64", "[layers][mlp]") {
  manual_seed(94);
  MLP mlp(3, 7, GeluApproximation::Tanh);
  require_module_gradcheck(mlp, random_tensor({2, 3}, 95));
}

TEST_CASE("Linear with a GELU is linear_gelu, and without one it is linear", "[layers][linear]") {
  manual_seed(96);
  Linear plain(4, 5), with_gelu(4, 5, true, GeluApproximation::Tanh);
  const Tensor x = random_tensor({3, 4}, 97, false).to(kFloat32);
  REQUIRE(same_bits<float>(plain(x), linear(x, plain.weight(), plain.bias())));
  REQUIRE(same_bits<float>(with_gelu(x), linear_gelu(x, with_gelu.weight(), with_gelu.bias(), GeluApproximation::Tanh)));
  // And linear_gelu is not linear: the GELU is applied (a value below zero shrinks towards zero).
  REQUIRE_FALSE(same_bits<float>(with_gelu(x), linear(x, with_gelu.weight(), with_gelu.bias())));
}
