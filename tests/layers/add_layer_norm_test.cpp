// add_layer_norm (the residual add fused into the LayerNorm after it): equal to add + layer_norm
// bit for bit on the CPU fast path, values and every gradient, and the errors it names.
#include <cstdint>
#include <vector>

#include "tests/layers/layer_test_helpers.h"

using namespace dtrain;
using dtrain::test::random_tensor;
using dtrain::test::require_gradcheck;
using dtrain::test::same_bits;
using Catch::Matchers::Contains;

namespace {

struct Leaves {
  Tensor x, residual, weight, bias;
};

Leaves make_leaves(DType dtype, uint64_t seed) {
  Generator generator(seed);
  auto leaf = [&](const Shape& shape) { return randn(shape, {.dtype = dtype}, &generator).set_requires_grad(true); };
  return {leaf({3, 45, 24}), leaf({3, 45, 24}), leaf({24}), leaf({24})};  // 135 rows: three 64-row blocks
}

template <typename T>
void require_fused_equals_separate(DType dtype) {
  Leaves a = make_leaves(dtype, 40), b = make_leaves(dtype, 40);  // the same values, separate graphs
  Generator generator(41);
  Tensor upstream_sum = randn({3, 45, 24}, {.dtype = dtype}, &generator);
  Tensor upstream_norm = randn({3, 45, 24}, {.dtype = dtype}, &generator);

  AddedAndNormalized fused = add_layer_norm(a.x, a.residual, {24}, a.weight, a.bias, 1e-5);
  Tensor sum_separate = add(b.x, b.residual);
  Tensor norm_separate = layer_norm(sum_separate, {24}, b.weight, b.bias, 1e-5);
  REQUIRE(same_bits<T>(fused.sum, sum_separate));
  REQUIRE(same_bits<T>(fused.normalized, norm_separate));

  // Both outputs feed the loss, as in a transformer block (the sum carries on as the residual).
  add(mul(fused.sum, upstream_sum).sum(), mul(fused.normalized, upstream_norm).sum()).backward();
  add(mul(sum_separate, upstream_sum).sum(), mul(norm_separate, upstream_norm).sum()).backward();
  REQUIRE(same_bits<T>(a.x.grad(), b.x.grad()));
  REQUIRE(same_bits<T>(a.residual.grad(), b.residual.grad()));
  REQUIRE(same_bits<T>(a.weight.grad(), b.weight.grad()));
  REQUIRE(same_bits<T>(a.bias.grad(), b.bias.grad()));
}

}  // namespace

TEST_CASE("add_layer_norm equals add then layer_norm to the bit, values and gradients") {
  SECTION("float32") { require_fused_equals_separate<float>(kFloat32); }
  SECTION("float64") { require_fused_equals_separate<double>(kFloat64); }
}

TEST_CASE("add_layer_norm gradcheck, with one output unused, and in bfloat16 on the composed path") {
  Tensor weight = random_tensor({4}, 42), bias = random_tensor({4}, 43);
  require_gradcheck(
      [](const std::vector<Tensor>& in) {
        AddedAndNormalized out = add_layer_norm(in[0], in[1], {4}, in[2], in[3], 1e-5);
        return add(mul(out.sum, 0.5), out.normalized);
      },
      {random_tensor({3, 4}, 44), random_tensor({3, 4}, 45), weight, bias});
  SECTION("only the normalized output used") {
    require_gradcheck(
        [](const std::vector<Tensor>& in) { return add_layer_norm(in[0], in[1], {4}, in[2], in[3]).normalized; },
        {random_tensor({3, 4}, 46), random_tensor({3, 4}, 47), weight, bias});
  }
  SECTION("only the sum used: x and residual get its gradient, the affine parameters zeros") {
    Tensor x = random_tensor({3, 4}, 48), residual = random_tensor({3, 4}, 49);
    Tensor w = random_tensor({4}, 50), b = random_tensor({4}, 51);
    Tensor upstream = random_tensor({3, 4}, 52, false);
    mul(add_layer_norm(x, residual, {4}, w, b).sum, upstream).sum().backward();
    REQUIRE(equal(x.grad(), upstream));
    REQUIRE(equal(residual.grad(), upstream));
    REQUIRE(equal(w.grad(), zeros({4}, {.dtype = kFloat64})));  // the engine passes zeros for the unused output
    REQUIRE(equal(b.grad(), zeros({4}, {.dtype = kFloat64})));
  }
  SECTION("bfloat16 takes the composed path on the CPU: exactly add then layer_norm") {
    Tensor x = random_tensor({5, 8}, 53, false).to(kBFloat16), residual = random_tensor({5, 8}, 54, false).to(kBFloat16);
    AddedAndNormalized out = add_layer_norm(x, residual, {8});
    REQUIRE(equal(out.sum, add(x, residual)));
    REQUIRE(equal(out.normalized, layer_norm(add(x, residual), {8})));
  }
}

TEST_CASE("add_layer_norm names a residual that does not match x") {
  Tensor x = zeros({2, 4});
  REQUIRE_THROWS_WITH(add_layer_norm(x, zeros({2, 3}), {4}),
                      Contains("expected residual of x's shape, dtype and device ([2, 4], float32, cpu), got [2, 3]"));
  REQUIRE_THROWS_WITH(add_layer_norm(x, zeros({2, 4}, {.dtype = kFloat64}), {4}), Contains("float64"));
  REQUIRE_THROWS_WITH(add_layer_norm(x, zeros({2, 5}), {5}), Contains("trailing dims are [5]"));
}

TEST_CASE("LayerNorm::add_and_normalize fires the module's hooks around the fused op") {
  LayerNorm norm(4);
  int pre_calls = 0, post_calls = 0, backward_calls = 0;
  norm.register_forward_pre_hook([&](Module&, const Tensor&) { ++pre_calls; });
  norm.register_forward_hook([&](Module&, const Tensor&, const Tensor&) { ++post_calls; });
  norm.register_backward_pre_hook([&](Module&, const Tensor&) { ++backward_calls; });
  Tensor x = random_tensor({2, 4}, 55, false).to(kFloat32), residual = random_tensor({2, 4}, 56, false).to(kFloat32);
  AddedAndNormalized out = norm.add_and_normalize(x, residual);
  REQUIRE(pre_calls == 1);
  REQUIRE(post_calls == 1);
  REQUIRE(equal(out.normalized, norm(add(x, residual))));  // the module's plain call on the sum
  out.normalized.sum().backward();
  REQUIRE(backward_calls == 1);
}
