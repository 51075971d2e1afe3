// cross_entropy (fused and composed) and mse_loss against hand formulas, and their gradchecks.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tests/layers/layer_test_helpers.h"

using namespace dtrain;
using dtrain::test::random_tensor;
using dtrain::test::require_gradcheck;
using Catch::Matchers::Contains;

namespace {

// -sum_c q_c log softmax(x)_c with q = (1 - s) one-hot + s / C, per row; 0 for an ignored row.
std::vector<double> hand_cross_entropy(const std::vector<double>& logits, const std::vector<int64_t>& targets,
                                       int64_t classes, int64_t ignore_index, double smoothing) {
  std::vector<double> losses;
  for (size_t r = 0; r < targets.size(); ++r) {
    if (targets[r] == ignore_index) {
      losses.push_back(0.0);
      continue;
    }
    double normaliser = 0.0;
    for (int64_t c = 0; c < classes; ++c) normaliser += std::exp(logits[r * classes + c]);
    double loss = 0.0;
    for (int64_t c = 0; c < classes; ++c) {
      const double q = (c == targets[r] ? 1.0 - smoothing : 0.0) + smoothing / static_cast<double>(classes);
      loss -= q * (logits[r * classes + c] - std::log(normaliser));
    }
    losses.push_back(loss);
  }
  return losses;
}

const std::vector<double> kLogits{2.0, -1.0, 0.5, 0.0,   // row 0
                                  0.1, 0.2,  0.3, 0.4,   // row 1
                                  -3.0, 4.0, 1.0, -0.5,  // row 2
                                  1.0, 1.0,  1.0, 1.0,   // row 3
                                  0.0, 5.0,  -2.0, 3.0};  // row 4
const std::vector<int64_t> kTargets{0, 3, -100, 2, 1};

}  // namespace

TEST_CASE("cross_entropy matches the hand formula, with ignore_index and label smoothing") {
  for (bool composed : {false, true}) {
    for (double smoothing : {0.0, 0.1}) {
      INFO((composed ? "composed" : "fused") << ", label_smoothing " << smoothing);
      auto loss = [composed](const Tensor& logits, const Tensor& targets, CrossEntropyOptions options) {
        return composed ? detail::cross_entropy_composed(logits, targets, options) : cross_entropy(logits, targets, options);
      };
      Tensor logits = from_vector(kLogits, {5, 4});
      Tensor targets = from_vector(kTargets, {5});
      std::vector<double> expected = hand_cross_entropy(kLogits, kTargets, 4, -100, smoothing);
      double total = 0.0;
      for (double value : expected) total += value;

      Tensor mean_loss = loss(logits, targets, {.label_smoothing = smoothing});
      REQUIRE(mean_loss.dim() == 0);
      REQUIRE(mean_loss.item() == Approx(total / 4.0).epsilon(1e-12));  // 4 rows count, the ignored one does not
      REQUIRE(loss(logits, targets, {.label_smoothing = smoothing, .reduction = Reduction::Sum}).item() ==
              Approx(total).epsilon(1e-12));
      std::vector<double> rows =
          loss(logits, targets, {.label_smoothing = smoothing, .reduction = Reduction::None}).to_vector<double>();
      for (size_t i = 0; i < rows.size(); ++i) REQUIRE(rows[i] == Approx(expected[i]).margin(1e-12));

      Tensor float_loss = loss(logits.to(kFloat32), targets, {.label_smoothing = smoothing});
      REQUIRE(float_loss.dtype() == kFloat32);
      REQUIRE(float_loss.item() == Approx(total / 4.0).epsilon(1e-5));
    }
  }
}

TEST_CASE("cross_entropy of [B, T, C] logits is that of the flattened rows") {
  Tensor logits = from_vector(kLogits, {5, 4}).narrow(0, 0, 4).reshape({2, 2, 4});
  Tensor targets = from_vector<int64_t>({0, 3, -100, 2}, {2, 2});
  REQUIRE(cross_entropy(logits, targets).item() ==
          Approx(cross_entropy(logits.reshape({4, 4}), targets.reshape({4})).item()).epsilon(1e-12));
  REQUIRE(cross_entropy(logits, targets, {.reduction = Reduction::None}).shape() == Shape{2, 2});
  REQUIRE(cross_entropy(logits, from_vector<int32_t>({0, 3, -100, 2}, {2, 2})).item() ==
          Approx(cross_entropy(logits, targets).item()));
}

TEST_CASE("cross_entropy errors name what was expected and what came") {
  Tensor logits = zeros({3, 4});
  REQUIRE_THROWS_WITH(cross_entropy(logits, from_vector<int64_t>({0, 4, 1})),
                      Contains("[0, 4)") && Contains("got 4") && Contains("row 1"));
  REQUIRE_THROWS_WITH(cross_entropy(logits, from_vector<int64_t>({0, 1})), Contains("[3]") && Contains("[2]"));
  REQUIRE_THROWS_WITH(cross_entropy(logits, zeros({3})), Contains("Int64"));
  REQUIRE_THROWS_WITH(cross_entropy(logits, from_vector<int64_t>({0, 1, 2}), {.label_smoothing = 2.0}),
                      Contains("label_smoothing"));
  // Every row ignored: the mean is 0 / 0, as PyTorch.
  REQUIRE(std::isnan(cross_entropy(logits, from_vector<int64_t>({-100, -100, -100})).item()));
}

TEST_CASE("cross_entropy gradchecks: fused and composed, every reduction, ignore_index and smoothing") {
  Tensor targets = from_vector<int64_t>({2, -100, 0, 1}, {4});
  for (Reduction reduction : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
    for (double smoothing : {0.0, 0.2}) {
      const CrossEntropyOptions options{.label_smoothing = smoothing, .reduction = reduction};
      INFO("reduction " << static_cast<int>(reduction) << ", label_smoothing " << smoothing);
      require_gradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], targets, options); },
                        {random_tensor({4, 3}, 60)});
      require_gradcheck(
          [&](const std::vector<Tensor>& in) { return detail::cross_entropy_composed(in[0], targets, options); },
          {random_tensor({4, 3}, 61)});
    }
  }
  // Through a 3-d, non-contiguous input.
  require_gradcheck(
      [](const std::vector<Tensor>& in) {
        return cross_entropy(in[0].transpose(0, 1), from_vector<int64_t>({1, 0, 2, 2}, {2, 2}));
      },
      {random_tensor({2, 2, 3}, 62)});
}

TEST_CASE("the fused cross_entropy gradient matches the composed one in float32") {
  Generator generator(63);
  Tensor logits = mul(randn({64, 50}, {}, &generator), 3.0).set_requires_grad(true);
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < 64; ++i) ids.push_back(i % 7 == 0 ? -100 : (i * 13) % 50);
  Tensor targets = from_vector(ids, {64});
  const CrossEntropyOptions options{.label_smoothing = 0.1};
  Tensor fused = cross_entropy(logits, targets, options);
  Tensor composed = detail::cross_entropy_composed(logits, targets, options);
  REQUIRE(fused.item() == Approx(composed.item()).epsilon(1e-5));
  Tensor fused_grad = autograd::grad({fused}, {logits})[0];
  Tensor composed_grad = autograd::grad({composed}, {logits})[0];
  REQUIRE(allclose(fused_grad, composed_grad, 1e-4, 1e-6));
}

TEST_CASE("mse_loss is the mean (or sum) of squared differences") {
  Tensor input = from_vector<double>({1.0, 2.0, -1.0, 0.5}, {2, 2});
  Tensor target = from_vector<double>({0.0, 2.5, 1.0, 0.5}, {2, 2});
  REQUIRE(mse_loss(input, target).item() == Approx((1.0 + 0.25 + 4.0 + 0.0) / 4.0));
  REQUIRE(mse_loss(input, target, Reduction::Sum).item() == Approx(5.25));
  REQUIRE(mse_loss(input, target, Reduction::None).to_vector<double>() == std::vector<double>{1.0, 0.25, 4.0, 0.0});
  REQUIRE_THROWS_WITH(mse_loss(input, zeros({4}, {.dtype = kFloat64})), Contains("[2, 2]") && Contains("[4]"));
  require_gradcheck([](const std::vector<Tensor>& in) { return mse_loss(in[0], in[1]); },
                    {random_tensor({2, 3}, 64), random_tensor({2, 3}, 65)});
}
