// feed_forward_gelu: one node for proj(gelu_tanh(fc(x))). On the CPU it runs the kernels of the two
// linear nodes, so its output and all five gradients equal linear(gelu(linear(x), Tanh)) bit for
// bit (float64 and float32); it passes a float64 gradcheck; and the MLP that uses it still fires
// fc's and proj's own hooks (ZeRO stage 3 gathers their parameters there).
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/core.h"
#include "layers/feed_forward.h"
#include "layers/layers.h"
#include "tests/layers/layer_test_helpers.h"

using namespace dtrain;
using namespace dtrain::test;

namespace {

struct FeedForwardLeaves {
  Tensor x, fc_weight, fc_bias, proj_weight, proj_bias;

  FeedForwardLeaves(DType dtype, bool bias) {
    auto leaf = [dtype](const Shape& shape, uint64_t seed, double scale) {
      return (random_tensor(shape, seed, false) * scale).to(dtype).set_requires_grad(true);
    };
    x = leaf({2, 5, 8}, 201, 1.0);
    fc_weight = leaf({24, 8}, 202, 0.4);
    fc_bias = bias ? leaf({24}, 203, 0.5) : Tensor();
    proj_weight = leaf({6, 24}, 204, 0.3);
    proj_bias = bias ? leaf({6}, 205, 0.5) : Tensor();
  }
  std::vector<Tensor> all() const { return {x, fc_weight, fc_bias, proj_weight, proj_bias}; }
};

template <typename T>
void require_same_bits(const Tensor& fused, const Tensor& composed, const std::string& what) {
  INFO(what);
  REQUIRE(fused.defined() == composed.defined());
  if (!fused.defined()) return;
  REQUIRE(fused.shape() == composed.shape());
  REQUIRE(same_bits<T>(fused, composed));
}

template <typename T>
void check_against_composition(DType dtype, bool bias) {
  FeedForwardLeaves a(dtype, bias), b(dtype, bias);
  Tensor fused = feed_forward_gelu(a.x, a.fc_weight, a.fc_bias, a.proj_weight, a.proj_bias);
  Tensor composed = linear(gelu(linear(b.x, b.fc_weight, b.fc_bias), GeluApproximation::Tanh), b.proj_weight, b.proj_bias);
  REQUIRE(fused.shape() == Shape{2, 5, 6});
  require_same_bits<T>(fused, composed, "output");
  const Tensor upstream = random_tensor({2, 5, 6}, 206, false).to(dtype);
  sum(mul(fused, upstream)).backward();
  sum(mul(composed, upstream)).backward();
  const char* names[] = {"d input", "d fc weight", "d fc bias", "d proj weight", "d proj bias"};
  const std::vector<Tensor> left = a.all(), right = b.all();
  for (size_t i = 0; i < left.size(); ++i) {
    if (!left[i].defined()) continue;
    require_same_bits<T>(left[i].grad(), right[i].grad(), names[i]);
  }
}

}  // namespace

TEST_CASE("feed_forward_gelu equals linear(gelu_tanh(linear(x))) bit for bit, output and all five gradients",
          "[layers][feed_forward]") {
  for (bool bias : {true, false}) {
    DYNAMIC_SECTION("bias " << bias) {
      check_against_composition<double>(kFloat64, bias);
      check_against_composition<float>(kFloat32, bias);
    }
  }
}

TEST_CASE("feed_forward_gelu passes gradcheck in float64 for all five inputs", "[layers][feed_forward]") {
  FeedForwardLeaves leaves(kFloat64, true);
  require_gradcheck(
      [](const std::vector<Tensor>& in) { return feed_forward_gelu(in[0], in[1], in[2], in[3], in[4]); },
      leaves.all());
}

TEST_CASE("feed_forward_gelu computes only the gradients asked for, and equal ones", "[layers][feed_forward]") {
  // Each input alone requiring grad: the node skips the GEMMs nobody needs; what it gives is unchanged.
  FeedForwardLeaves reference(kFloat64, true);
  const Tensor upstream = random_tensor({2, 5, 6}, 207, false);
  sum(mul(feed_forward_gelu(reference.x, reference.fc_weight, reference.fc_bias, reference.proj_weight,
                            reference.proj_bias),
          upstream))
      .backward();
  const std::vector<Tensor> expected = reference.all();
  for (size_t wanted = 0; wanted < expected.size(); ++wanted) {
    FeedForwardLeaves one(kFloat64, true);
    std::vector<Tensor> inputs = one.all();
    for (size_t i = 0; i < inputs.size(); ++i) inputs[i] = inputs[i].detach().set_requires_grad(i == wanted);
    sum(mul(feed_forward_gelu(inputs[0], inputs[1], inputs[2], inputs[3], inputs[4]), upstream)).backward();
    for (size_t i = 0; i < inputs.size(); ++i) {
      INFO("only input " << wanted << " requires grad; input " << i);
      if (i == wanted) REQUIRE(same_bits<double>(inputs[i].grad(), expected[i].grad()));
      else REQUIRE_FALSE(inputs[i].grad().defined());
    }
  }
  // Nothing requiring grad: no node, the same values.
  NoGradGuard no_grad;
  const Tensor values = feed_forward_gelu(reference.x, reference.fc_weight, reference.fc_bias, reference.proj_weight,
                                          reference.proj_bias);
  REQUIRE_FALSE(values.requires_grad());
}

TEST_CASE("feed_forward_gelu raises for mismatched shapes, dtypes and integer inputs", "[layers][feed_forward]") {
  const Tensor x = zeros({3, 8}), fc_w = zeros({24, 8}), fc_b = zeros({24}), proj_w = zeros({6, 24}), proj_b = zeros({6});
  CHECK_THROWS_WITH(feed_forward_gelu(x, zeros({24, 7}), fc_b, proj_w, proj_b),
                    Catch::Contains("feed_forward_gelu: expected fc_weight of shape [*, 8], got [24, 7]"));
  CHECK_THROWS_WITH(feed_forward_gelu(x, fc_w, fc_b, zeros({6, 23}), proj_b),
                    Catch::Contains("expected proj_weight of shape [*, 24], got [6, 23]"));
  CHECK_THROWS_WITH(feed_forward_gelu(x, fc_w, zeros({23}), proj_w, proj_b),
                    Catch::Contains("expected the bias of fc_weight of shape [24], got [23]"));
  CHECK_THROWS_WITH(feed_forward_gelu(x.to(kFloat64), fc_w, fc_b, proj_w, proj_b),
                    Catch::Contains("expected weights of the input's dtype float64, got float32"));
  CHECK_THROWS_WITH(feed_forward_gelu(x.to(kInt64), fc_w.to(kInt64), fc_b, proj_w.to(kInt64), proj_b),
                    Catch::Contains("expected a floating input, got int64"));
}

TEST_CASE("the MLP's fused forward fires fc's and proj's hooks, forward and backward", "[layers][feed_forward][mlp]") {
  manual_seed(208);
  MLP mlp(8, 24, GeluApproximation::Tanh);
  mlp.to(kFloat64);
  std::vector<std::string> calls;
  for (const auto& [name, child] : std::vector<std::pair<std::string, std::shared_ptr<Linear>>>{
           {"fc", mlp.fc()}, {"proj", mlp.proj()}}) {
    child->register_forward_pre_hook([&calls, name = name](Module&, const Tensor&) { calls.push_back(name + " pre"); });
    child->register_forward_hook(
        [&calls, name = name](Module&, const Tensor&, const Tensor&) { calls.push_back(name + " post"); });
    child->register_backward_pre_hook(
        [&calls, name = name](Module&, const Tensor&) { calls.push_back(name + " backward"); });
  }
  Tensor out = mlp(random_tensor({3, 8}, 209));
  CHECK(calls == std::vector<std::string>{"fc pre", "proj pre", "proj post", "fc post"});
  calls.clear();
  sum(out).backward();
  // Both modules' backward hooks fire before the node runs, proj's first, as in the unfused MLP.
  CHECK(calls == std::vector<std::string>{"proj backward", "fc backward"});
  CHECK(mlp.fc()->weight().grad().defined());
  CHECK(mlp.proj()->bias().grad().defined());
}
