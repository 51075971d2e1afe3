// Linear and Embedding: values against hand loops, default initialisation, gradchecks.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/layers/layer_test_helpers.h"

using namespace dtrain;
using dtrain::test::names_of;
using dtrain::test::random_tensor;
using dtrain::test::require_gradcheck;
using dtrain::test::require_module_gradcheck;
using Catch::Matchers::Contains;

TEST_CASE("Linear computes x W^T + b over the last dim, for any leading dims") {
  manual_seed(10);
  Linear layer(4, 5);
  Tensor x = randn({2, 3, 4});
  Tensor y = layer(x);
  REQUIRE(y.shape() == Shape{2, 3, 5});

  std::vector<float> xs = x.to_vector<float>(), w = layer.weight().to_vector<float>(), b = layer.bias().to_vector<float>();
  std::vector<float> ys = y.to_vector<float>();
  for (int row = 0; row < 6; ++row) {
    for (int o = 0; o < 5; ++o) {
      double expected = b[o];
      for (int i = 0; i < 4; ++i) expected += static_cast<double>(xs[row * 4 + i]) * w[o * 4 + i];
      REQUIRE(ys[row * 5 + o] == Approx(expected).epsilon(1e-5).margin(1e-6));
    }
  }
  SECTION("a 1-d input and a non-contiguous input give the same rows") {
    REQUIRE(allclose(layer(x.select(0, 1).select(0, 2)), y.select(0, 1).select(0, 2)));
    Tensor transposed = x.transpose(0, 1).contiguous().transpose(0, 1);  // same values, other strides
    REQUIRE(allclose(layer(transposed), y));
  }
}

TEST_CASE("Linear without bias has only a weight") {
  Linear layer(3, 2, false);
  REQUIRE(layer.parameters().size() == 1);
  REQUIRE_FALSE(layer.bias().defined());
  Tensor x = randn({4, 3});
  REQUIRE(allclose(layer(x), matmul(x, layer.weight().t())));
}

TEST_CASE("Linear names both shapes (or dtypes) when the input does not fit") {
  Linear layer(4, 5);
  REQUIRE_THROWS_WITH(layer(zeros({2, 3})), Contains("[..., 4]") && Contains("[5, 4]") && Contains("[2, 3]"));
  REQUIRE_THROWS_WITH(layer(zeros({2, 4}, {.dtype = kFloat64})), Contains("float32") && Contains("float64"));
}

TEST_CASE("Linear and Conv-style initialisation is U(-1/sqrt(fan_in), 1/sqrt(fan_in))") {
  manual_seed(11);
  Linear layer(256, 512);
  const double bound = 1.0 / 16.0;
  std::vector<float> w = layer.weight().to_vector<float>();
  double sum = 0.0, sum_squares = 0.0, largest = 0.0;
  for (float value : w) {
    sum += value;
    sum_squares += static_cast<double>(value) * value;
    largest = std::max(largest, std::abs(static_cast<double>(value)));
  }
  const double n = static_cast<double>(w.size());
  REQUIRE(largest <= bound);
  REQUIRE(largest > 0.99 * bound);
  REQUIRE(std::abs(sum / n) < 0.01 * bound);
  REQUIRE(sum_squares / n == Approx(bound * bound / 3.0).epsilon(0.02));  // variance of U(-b, b)
  for (float value : layer.bias().to_vector<float>()) REQUIRE(std::abs(value) <= bound);
}

TEST_CASE("Linear gradcheck w.r.t. input, weight and bias") {
  Linear layer(3, 2);
  require_module_gradcheck(layer, random_tensor({2, 2, 3}, 12));
  Linear no_bias(3, 2, false);
  require_module_gradcheck(no_bias, random_tensor({4, 3}, 13));
}

TEST_CASE("Embedding returns the rows of its weight, in the indices' shape") {
  manual_seed(14);
  Embedding table(6, 3);
  Tensor ids = from_vector<int64_t>({5, 0, 5, 2}, {2, 2});
  Tensor out = table(ids);
  REQUIRE(out.shape() == Shape{2, 2, 3});
  std::vector<float> w = table.weight().to_vector<float>(), values = out.to_vector<float>();
  std::vector<int64_t> rows{5, 0, 5, 2};
  for (size_t i = 0; i < rows.size(); ++i) {
    for (size_t j = 0; j < 3; ++j) REQUIRE(values[i * 3 + j] == w[static_cast<size_t>(rows[i]) * 3 + j]);
  }
  REQUIRE(table(from_vector<int32_t>({5, 0, 5, 2}, {2, 2})).shape() == Shape{2, 2, 3});
  REQUIRE_THROWS_WITH(table(zeros({2})), Contains("Int64"));
}

TEST_CASE("Embedding initialisation is N(0, 1)") {
  manual_seed(15);
  Embedding table(1000, 64);
  std::vector<float> w = table.weight().to_vector<float>();
  double sum = 0.0, sum_squares = 0.0;
  for (float value : w) {
    sum += value;
    sum_squares += static_cast<double>(value) * value;
  }
  const double n = static_cast<double>(w.size());
  REQUIRE(std::abs(sum / n) < 0.01);
  REQUIRE(sum_squares / n == Approx(1.0).epsilon(0.02));
}

TEST_CASE("Embedding gradcheck: repeated indices sum their gradients") {
  Embedding table(4, 3);
  table.to(kFloat64);
  Tensor ids = from_vector<int64_t>({1, 3, 1, 1}, {2, 2});
  require_gradcheck([&](const std::vector<Tensor>&) { return mul(table(ids), table(ids)); }, {table.weight()});
  table(ids).sum().backward();
  std::vector<double> grad = table.weight().grad().to_vector<double>();
  REQUIRE(grad == std::vector<double>{0, 0, 0, 3, 3, 3, 0, 0, 0, 1, 1, 1});
}

namespace {

// An embedding and an output layer that shares its weight, the way a language model ties them.
class TiedModel : public Module {
 public:
  TiedModel() : Module("TiedModel") {
    embedding = register_module("embedding", std::make_shared<Embedding>(7, 3));
    output = register_module("output", Linear::tied(embedding->weight()));
  }
  std::shared_ptr<Embedding> embedding;
  std::shared_ptr<Linear> output;

 protected:
  Tensor forward(const Tensor& tokens) override { return (*output)((*embedding)(tokens)); }
};

}  // namespace

TEST_CASE("Linear::tied computes with another module's weight, which is listed and saved once") {
  manual_seed(3);
  TiedModel model;
  CHECK(model.output->in_features() == 3);
  CHECK(model.output->out_features() == 7);
  CHECK(!model.output->bias().defined());
  CHECK(names_of(model.named_parameters()) == std::vector<std::string>{"embedding.weight"});
  StateDict state = model.state_dict();
  CHECK(state.contains("embedding.weight"));
  CHECK(!state.contains("output.weight"));

  // logits[t, v] = sum_k E[token t, k] * E[v, k], computed by hand from the weight's values.
  Tensor tokens = from_vector(std::vector<int64_t>{2, 5}, {2}, {.dtype = kInt64});
  Tensor logits = model(tokens);
  std::vector<float> weight = model.embedding->weight().contiguous().to_vector<float>();
  std::vector<float> got = logits.to_vector<float>();
  const int64_t chosen[2] = {2, 5};
  for (int64_t t = 0; t < 2; ++t) {
    for (int64_t v = 0; v < 7; ++v) {
      double expected = 0;
      for (int64_t k = 0; k < 3; ++k) expected += double(weight[chosen[t] * 3 + k]) * weight[v * 3 + k];
      CHECK(got[t * 7 + v] == Approx(expected).margin(1e-6));
    }
  }
  // Both uses reach the one weight's gradient: d/dE[v, k] of sum_{t,u} E[c_t, k] E[u, k] is
  // sum_t E[c_t, k] (as the output layer's row v) plus, for v = c_t, sum_u E[u, k] (as the input).
  sum(logits).backward();
  REQUIRE(model.embedding->weight().grad().defined());
  std::vector<float> gradient = model.embedding->weight().grad().contiguous().to_vector<float>();
  for (int64_t v = 0; v < 7; ++v) {
    for (int64_t k = 0; k < 3; ++k) {
      double expected = weight[2 * 3 + k] + weight[5 * 3 + k];
      if (v == 2 || v == 5) {
        for (int64_t u = 0; u < 7; ++u) expected += weight[u * 3 + k];
      }
      CHECK(gradient[v * 3 + k] == Approx(expected).margin(1e-5));
    }
  }
  CHECK_THROWS_WITH(Linear::tied(zeros({3})), Contains("expected a defined 2-d weight [out, in], got [3]"));
}

TEST_CASE("Linear describes its activation, which its parameter shapes do not show") {
  using Settings = ModuleSettings;
  CHECK(Linear(4, 5).describe() == Settings{{"activation", "none"}});
  CHECK(Linear(4, 5, false, GeluApproximation::Tanh).describe() == Settings{{"activation", "gelu tanh"}});
  CHECK(Linear(4, 5, true, GeluApproximation::None).describe() == Settings{{"activation", "gelu"}});
}
