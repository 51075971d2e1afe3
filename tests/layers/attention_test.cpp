// CausalSelfAttention, MLP and TransformerBlock.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tests/layers/layer_test_helpers.h"

using namespace dtrain;
using dtrain::test::random_tensor;
using dtrain::test::require_gradcheck;
using dtrain::test::require_module_gradcheck;
using Catch::Matchers::Contains;

namespace {

// y = x W^T + b for a row-major x [rows, in] and W [out, in].
std::vector<double> affine(const std::vector<double>& x, const std::vector<double>& w, const std::vector<double>& b,
                           int rows, int in, int out) {
  std::vector<double> y(static_cast<size_t>(rows * out));
  for (int r = 0; r < rows; ++r) {
    for (int o = 0; o < out; ++o) {
      double sum = b[o];
      for (int i = 0; i < in; ++i) sum += x[r * in + i] * w[o * in + i];
      y[r * out + o] = sum;
    }
  }
  return y;
}

// Multi-head causal attention of one sequence x [T, d], written out loop by loop.
std::vector<double> reference_attention(CausalSelfAttention& attention, const std::vector<double>& x, int length) {
  const int d = static_cast<int>(attention.config().d_model), heads = static_cast<int>(attention.config().heads);
  const int head_dim = d / heads;
  std::vector<double> qkv = affine(x, attention.qkv()->weight().to_vector<double>(),
                                   attention.qkv()->bias().to_vector<double>(), length, d, 3 * d);
  std::vector<double> merged(static_cast<size_t>(length * d), 0.0);
  for (int h = 0; h < heads; ++h) {
    for (int t = 0; t < length; ++t) {
      std::vector<double> scores;
      for (int s = 0; s <= t; ++s) {  // only the past and the present
        double dot = 0.0;
        for (int i = 0; i < head_dim; ++i) {
          dot += qkv[t * 3 * d + h * head_dim + i] * qkv[s * 3 * d + d + h * head_dim + i];
        }
        scores.push_back(dot / std::sqrt(static_cast<double>(head_dim)));
      }
      double largest = *std::max_element(scores.begin(), scores.end()), total = 0.0;
      for (double& score : scores) total += (score = std::exp(score - largest));
      for (int s = 0; s <= t; ++s) {
        for (int i = 0; i < head_dim; ++i) {
          merged[t * d + h * head_dim + i] += scores[s] / total * qkv[s * 3 * d + 2 * d + h * head_dim + i];
        }
      }
    }
  }
  return affine(merged, attention.proj()->weight().to_vector<double>(), attention.proj()->bias().to_vector<double>(),
                length, d, d);
}

}  // namespace

TEST_CASE("causal_mask marks the future") {
  REQUIRE(causal_mask(3).to_vector<bool>() == std::vector<bool>{false, true, true, false, false, true, false, false, false});
}

TEST_CASE("CausalSelfAttention matches attention written out by hand") {
  manual_seed(40);
  CausalSelfAttention attention({.d_model = 6, .heads = 2});
  attention.to(kFloat64);
  Tensor x = random_tensor({2, 4, 6}, 41, false);
  Tensor y = attention(x);
  REQUIRE(y.shape() == Shape{2, 4, 6});
  for (int64_t b = 0; b < 2; ++b) {
    std::vector<double> expected = reference_attention(attention, x.select(0, b).to_vector<double>(), 4);
    std::vector<double> got = y.select(0, b).to_vector<double>();
    for (size_t i = 0; i < expected.size(); ++i) REQUIRE(got[i] == Approx(expected[i]).margin(1e-12));
  }
  REQUIRE_THROWS_WITH(attention(zeros({2, 4, 5}, {.dtype = kFloat64})), Contains("[batch, time, 6]") && Contains("[2, 4, 5]"));
  REQUIRE_THROWS_WITH(CausalSelfAttention({.d_model = 6, .heads = 4}), Contains("multiple of heads"));
}

TEST_CASE("attention is causal: the output at t does not change when inputs after t change") {
  manual_seed(42);
  CausalSelfAttention attention({.d_model = 8, .heads = 2});
  Tensor x = randn({1, 6, 8});
  Tensor changed = x.clone();
  {
    NoGradGuard no_grad;
    changed.narrow(1, 3, 3).copy_(randn({1, 3, 8}));  // positions 3, 4, 5
  }
  Tensor before = attention(x), after = attention(changed);
  REQUIRE(equal(before.narrow(1, 0, 3), after.narrow(1, 0, 3)));
  REQUIRE_FALSE(allclose(before.narrow(1, 3, 1), after.narrow(1, 3, 1)));
}

TEST_CASE("CausalSelfAttention gradcheck w.r.t. input and all projections") {
  manual_seed(43);
  CausalSelfAttention attention({.d_model = 4, .heads = 2});
  require_module_gradcheck(attention, random_tensor({2, 3, 4}, 44));
}

TEST_CASE("attention dropout acts only while training") {
  manual_seed(45);
  CausalSelfAttention attention({.d_model = 8, .heads = 2, .dropout = 0.5});
  Tensor x = randn({2, 5, 8});
  attention.eval();
  Tensor evaluated = attention(x);
  REQUIRE(equal(attention(x), evaluated));
  attention.train();
  REQUIRE_FALSE(allclose(attention(x), evaluated));
}

TEST_CASE("MLP is Linear d->4d, GELU, Linear 4d->d") {
  manual_seed(46);
  MLP mlp(4, 16, GeluApproximation::Tanh);
  REQUIRE(mlp.fc()->weight().shape() == Shape{16, 4});
  REQUIRE(mlp.proj()->weight().shape() == Shape{4, 16});
  Tensor x = randn({3, 4});
  // fc applies the GELU itself (linear_gelu); the same map written out unfused:
  Tensor expected = (*mlp.proj())(gelu(linear(x, mlp.fc()->weight(), mlp.fc()->bias()), GeluApproximation::Tanh));
  REQUIRE(allclose(mlp(x), expected));
  MLP small(3, 5);
  require_module_gradcheck(small, random_tensor({2, 3}, 47));
}

TEST_CASE("TransformerBlock is x + attn(ln1(x)), then + mlp(ln2(x))") {
  manual_seed(48);
  TransformerBlock block({.d_model = 8, .heads = 2});
  Tensor x = randn({2, 3, 8});
  Tensor h = add(x, (*block.attn())((*block.ln1())(x)));
  Tensor expected = add(h, (*block.mlp())((*block.ln2())(h)));
  REQUIRE(allclose(block(x), expected));
  REQUIRE(block.mlp()->fc()->weight().shape() == Shape{32, 8});

  TransformerBlock small({.d_model = 4, .heads = 2, .mlp_ratio = 2});
  require_module_gradcheck(small, random_tensor({1, 3, 4}, 49));
}
