// causal_softmax: the fused CPU path against masked_fill + softmax, bit for bit, forward and
// backward, and a gradcheck.
#include <cstdint>
#include <utility>
#include <vector>

#include "tests/layers/layer_test_helpers.h"

using namespace dtrain;
using dtrain::test::random_tensor;
using dtrain::test::require_gradcheck;
using dtrain::test::same_bits;
using Catch::Matchers::Contains;

namespace {

// Forward output and input gradient (for a fixed, non-uniform upstream gradient) of fn.
template <typename Fn>
std::pair<Tensor, Tensor> forward_and_gradient(const Tensor& scores, const Tensor& upstream, Fn fn) {
  Tensor leaf = scores.detach();
  leaf.set_requires_grad();
  Tensor out = fn(leaf);
  (out * upstream).sum().backward();
  return {out.detach(), leaf.grad()};
}

template <typename T>
void require_fused_matches_composed(DType dtype) {
  for (int64_t length : {1, 5, 17, 128, 300}) {  // 300: more than one block of 256 per row
    INFO("T = " << length << ", dtype " << dtype);
    Tensor scores = (random_tensor({2, 3, length, length}, 60 + length, false) * 3.0).to(dtype);
    Tensor upstream = random_tensor({2, 3, length, length}, 90 + length, false).to(dtype);
    auto [fused_out, fused_grad] = forward_and_gradient(scores, upstream, [](const Tensor& x) { return causal_softmax(x); });
    auto [reference_out, reference_grad] =
        forward_and_gradient(scores, upstream, [](const Tensor& x) { return detail::causal_softmax_composed(x); });
    REQUIRE(same_bits<T>(fused_out, reference_out));
    REQUIRE(same_bits<T>(fused_grad, reference_grad));
  }
}

}  // namespace

TEST_CASE("causal_softmax equals masked_fill + softmax to the bit, forward and backward") {
  require_fused_matches_composed<float>(kFloat32);
  require_fused_matches_composed<double>(kFloat64);

  // Row i sums to 1 over columns 0..i; the future is exactly 0.
  Tensor weights = causal_softmax(random_tensor({4, 4}, 7, false).to(kFloat32));
  const std::vector<float> w = weights.to_vector<float>();
  for (int i = 0; i < 4; ++i) {
    double row_sum = 0;
    for (int j = 0; j < 4; ++j) {
      if (j > i) REQUIRE(w[i * 4 + j] == 0.0f);
      row_sum += w[i * 4 + j];
    }
    REQUIRE(row_sum == Approx(1.0).epsilon(1e-6));
  }
  // A transposed (non-contiguous) input gives the values of its contiguous copy.
  Tensor square = random_tensor({3, 6, 6}, 8, false).to(kFloat32);
  REQUIRE(same_bits<float>(causal_softmax(square.transpose(1, 2)), causal_softmax(contiguous(square.transpose(1, 2)))));
}

TEST_CASE("causal_softmax gradcheck, and its shape errors") {
  require_gradcheck([](const std::vector<Tensor>& in) { return causal_softmax(in[0]); }, {random_tensor({2, 5, 5}, 9)});
  REQUIRE_THROWS_WITH(causal_softmax(zeros({3, 4})), Contains("expected scores [..., T, T], got shape [3, 4]"));
  REQUIRE_THROWS_WITH(causal_softmax(zeros({3})), Contains("expected scores [..., T, T], got shape [3]"));
}

TEST_CASE("causal_softmax in bfloat16 and float16 is the float32 result rounded once, forward and backward") {
  // The CPU kernel widens 16-bit scores to float32, so its result must equal the float32 kernel's
  // on the same (already 16-bit) values, rounded to the dtype: bit for bit.
  for (DType dtype : {kBFloat16, kFloat16}) {
    INFO("dtype " << dtype);
    Tensor scores = (random_tensor({2, 37, 37}, 71, false) * 3.0).to(dtype);
    Tensor upstream = random_tensor({2, 37, 37}, 72, false).to(dtype);
    auto [out, grad] = forward_and_gradient(scores, upstream, [](const Tensor& x) { return causal_softmax(x); });
    REQUIRE(out.dtype() == dtype);
    auto [wide_out, wide_grad] = forward_and_gradient(scores.to(kFloat32), upstream.to(kFloat32),
                                                      [](const Tensor& x) { return causal_softmax(x); });
    REQUIRE(equal(out, wide_out.to(dtype)));
    // The backward reads the rounded forward output, so compare against the float32 formula on it.
    Tensor rounded = out.to(kFloat32), g = upstream.to(kFloat32);
    Tensor expected = mul(rounded, sub(g, sum(mul(g, rounded), {-1}, /*keepdim=*/true)));
    REQUIRE(equal(grad, expected.to(dtype)));
    // And it is a softmax: each row sums to 1 within the dtype's rounding.
    REQUIRE(allclose(sum(out.to(kFloat32), {-1}), ones({2, 37}), 0, dtype == kBFloat16 ? 0.05 : 0.01));
  }
}
