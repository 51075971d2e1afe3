// Binary and unary ops against values computed in the test with <cmath>.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "dtrain.h"

using namespace dtrain;
using Catch::Contains;

namespace {
const std::vector<double> kLeft{-2.0, -0.5, 0.0, 0.75, 1.5, 3.0};
const std::vector<double> kRight{1.0, 2.0, -1.5, 0.25, -3.0, 0.5};

template <typename Fn>
void check_binary(Tensor (*op)(const Tensor&, const Tensor&), Fn reference, DType dtype, double tolerance) {
  Tensor a = from_vector(kLeft).to(dtype), b = from_vector(kRight).to(dtype);
  std::vector<double> got = op(a, b).to_vector<double>();
  for (size_t i = 0; i < kLeft.size(); ++i) {
    double expected = reference(a.to_vector<double>()[i], b.to_vector<double>()[i]);
    if (std::isnan(expected)) REQUIRE(std::isnan(got[i]));
    else REQUIRE(got[i] == Approx(expected).margin(tolerance).epsilon(tolerance));
  }
}
}  // namespace

TEST_CASE("binary arithmetic matches <cmath> in every floating dtype") {
  for (auto [dtype, tolerance] : {std::pair{kFloat64, 1e-15}, {kFloat32, 1e-6}, {kBFloat16, 1e-2}, {kFloat16, 1e-3}}) {
    check_binary(add, [](double x, double y) { return x + y; }, dtype, tolerance);
    check_binary(sub, [](double x, double y) { return x - y; }, dtype, tolerance);
    check_binary(mul, [](double x, double y) { return x * y; }, dtype, tolerance);
    check_binary(div, [](double x, double y) { return x / y; }, dtype, tolerance);
    check_binary(maximum, [](double x, double y) { return std::max(x, y); }, dtype, tolerance);
    check_binary(minimum, [](double x, double y) { return std::min(x, y); }, dtype, tolerance);
    check_binary(static_cast<Tensor (*)(const Tensor&, const Tensor&)>(pow),
                 [](double x, double y) { return std::pow(x, y); }, dtype, tolerance);
  }
}

TEST_CASE("integer arithmetic is exact and integer division is true division") {
  Tensor a = from_vector<int64_t>({7, -7, 9}), b = from_vector<int64_t>({2, 2, 3});
  REQUIRE((a + b).to_vector<int64_t>() == std::vector<int64_t>{9, -5, 12});
  REQUIRE((a * b).dtype() == kInt64);
  REQUIRE((a / b).dtype() == kFloat32);
  REQUIRE((a / b).to_vector<float>() == std::vector<float>{3.5f, -3.5f, 3.0f});
  REQUIRE_THROWS_WITH(ones({2}, {.dtype = kBool}) + ones({2}, {.dtype = kBool}), Contains("not defined for bool"));
}

TEST_CASE("broadcasting follows NumPy and names both shapes on a mismatch") {
  Tensor row = from_vector<float>({1, 2, 3}, {1, 3});
  Tensor column = from_vector<float>({10, 20}, {2, 1});
  REQUIRE((row + column).to_vector<float>() == std::vector<float>{11, 12, 13, 21, 22, 23});
  REQUIRE((row + 1).to_vector<float>() == std::vector<float>{2, 3, 4});
  REQUIRE((10 - row).to_vector<float>() == std::vector<float>{9, 8, 7});
  REQUIRE((6 / row).to_vector<float>() == std::vector<float>{6, 3, 2});
  REQUIRE_THROWS_WITH(zeros({2, 3}) + zeros({4, 3}),
                      Contains("add: shapes [2, 3] and [4, 3] cannot be broadcast together (dimension 0 is 2 vs 4)"));
}

TEST_CASE("comparisons give bool tensors") {
  Tensor a = from_vector<float>({1, 2, 3}), b = from_vector<float>({3, 2, 1});
  REQUIRE((a < b).dtype() == kBool);
  REQUIRE((a < b).to_vector<bool>() == std::vector<bool>{true, false, false});
  REQUIRE((a <= b).to_vector<bool>() == std::vector<bool>{true, true, false});
  REQUIRE(eq(a, b).to_vector<bool>() == std::vector<bool>{false, true, false});
  REQUIRE(ne(a, 2).to_vector<bool>() == std::vector<bool>{true, false, true});
  REQUIRE((a > 1.5).to_vector<bool>() == std::vector<bool>{false, true, true});
}

TEST_CASE("where, masked_fill and clamp") {
  Tensor x = from_vector<float>({-2, -1, 0, 1, 2});
  REQUIRE(where(x > 0, x, zeros_like(x)).to_vector<float>() == std::vector<float>{0, 0, 0, 1, 2});
  REQUIRE(masked_fill(x, x < 0, -100).to_vector<float>() == std::vector<float>{-100, -100, 0, 1, 2});
  REQUIRE(clamp(x, -1, 1).to_vector<float>() == std::vector<float>{-1, -1, 0, 1, 1});
  REQUIRE_THROWS_WITH(where(x, x, x), Contains("expected a bool condition, got float32"));
  REQUIRE_THROWS_WITH(masked_fill(x, zeros({2, 5}, {.dtype = kBool}), 1), Contains("does not broadcast to the input's shape [5]"));
}

TEST_CASE("where over long runs: tensor or broadcast operands, strided operands, and its gradients") {
  // [3, 67, 67]: long enough for the vector loops and their tails; the mask [67, 67] broadcasts
  // over the leading dim, as attention's causal mask does.
  const int64_t n = 67;
  Tensor x = arange(3 * n * n, {.dtype = kFloat32}).view({3, n, n}) * 0.5 - 100.0;
  Tensor y = -x;
  Tensor mask = gt(unsqueeze(arange(n), 0), unsqueeze(arange(n), 1));  // [n, n]: column > row
  const std::vector<float> xs = x.to_vector<float>(), ys = y.to_vector<float>();
  const std::vector<bool> ms = mask.to_vector<bool>();
  auto expect = [&](const Tensor& got, auto value) {
    const std::vector<float> values = got.to_vector<float>();
    REQUIRE(static_cast<int64_t>(values.size()) == 3 * n * n);
    for (int64_t i = 0; i < 3 * n * n; ++i) {
      if (values[i] != value(i, static_cast<bool>(ms[i % (n * n)]))) FAIL("element " << i << " is " << values[i]);
    }
  };
  expect(where(mask, x, y), [&](int64_t i, bool m) { return m ? xs[i] : ys[i]; });
  expect(masked_fill(x, mask, -7.0), [&](int64_t i, bool m) { return m ? -7.0f : xs[i]; });
  expect(where(mask, full({1}, 3.0), y), [&](int64_t i, bool m) { return m ? 3.0f : ys[i]; });
  // Transposed operands take the strided path.
  Tensor xt = x.transpose(1, 2), yt = y.transpose(1, 2);
  const std::vector<float> xts = contiguous(xt).to_vector<float>(), yts = contiguous(yt).to_vector<float>();
  expect(where(mask, xt, yt), [&](int64_t i, bool m) { return m ? xts[i] : yts[i]; });

  // masked_fill's gradient: zero where filled, passed through elsewhere; where's: split by mask.
  Tensor leaf = x.detach();
  leaf.set_requires_grad();
  Tensor other = y.detach();
  other.set_requires_grad();
  Tensor weights = x * 0.01;  // a non-uniform upstream gradient
  (masked_fill(leaf, mask, -1e9) * weights).sum().backward();
  const std::vector<float> ws = weights.to_vector<float>();
  expect(leaf.grad(), [&](int64_t i, bool m) { return m ? 0.0f : ws[i]; });
  leaf.set_grad(Tensor());
  (where(mask, leaf, other) * weights).sum().backward();
  expect(leaf.grad(), [&](int64_t i, bool m) { return m ? ws[i] : 0.0f; });
  expect(other.grad(), [&](int64_t i, bool m) { return m ? 0.0f : ws[i]; });
}

TEST_CASE("unary math matches <cmath>") {
  std::vector<double> inputs{0.1, 0.5, 1.0, 2.0, 3.5};
  Tensor x = from_vector(inputs);
  auto check = [&](const Tensor& result, auto reference) {
    std::vector<double> got = result.to_vector<double>();
    for (size_t i = 0; i < inputs.size(); ++i) REQUIRE(got[i] == Approx(reference(inputs[i])).epsilon(1e-14));
  };
  check(exp(x), [](double v) { return std::exp(v); });
  check(log(x), [](double v) { return std::log(v); });
  check(sqrt(x), [](double v) { return std::sqrt(v); });
  check(rsqrt(x), [](double v) { return 1 / std::sqrt(v); });
  check(reciprocal(x), [](double v) { return 1 / v; });
  check(tanh(x), [](double v) { return std::tanh(v); });
  check(sigmoid(x), [](double v) { return 1 / (1 + std::exp(-v)); });
  check(sin(x), [](double v) { return std::sin(v); });
  check(cos(x), [](double v) { return std::cos(v); });
  check(pow(x, 1.5), [](double v) { return std::pow(v, 1.5); });
  check(square(x), [](double v) { return v * v; });
  check(neg(x), [](double v) { return -v; });
  // GELU, both forms, against their definitions.
  check(gelu(x), [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); });
  check(gelu(x, GeluApproximation::Tanh), [](double v) {
    return 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
  });
}

TEST_CASE("sign, abs and relu keep integer dtypes, and float functions promote integers") {
  Tensor i = from_vector<int32_t>({-3, 0, 4});
  REQUIRE(abs(i).to_vector<int32_t>() == std::vector<int32_t>{3, 0, 4});
  REQUIRE(sign(i).to_vector<int32_t>() == std::vector<int32_t>{-1, 0, 1});
  REQUIRE(relu(i).to_vector<int32_t>() == std::vector<int32_t>{0, 0, 4});
  REQUIRE(exp(i).dtype() == kFloat32);
  REQUIRE(exp(i).to_vector<float>()[1] == 1.0f);
}

TEST_CASE("in-place ops write through and bump the version counter") {
  Tensor x = ones({3});
  uint32_t version = x.storage()->version();
  x.add_(from_vector<float>({1, 2, 3}), 2);
  REQUIRE(x.to_vector<float>() == std::vector<float>{3, 5, 7});
  x.mul_(2).div_(from_vector<float>({2, 5, 7})).sub_(ones({1}));
  REQUIRE(x.to_vector<float>() == std::vector<float>{2, 1, 1});
  REQUIRE(x.storage()->version() > version);
  REQUIRE_THROWS_WITH(x.add_(zeros({2, 3})), Contains("does not fit in the left operand's shape [3]"));
}

TEST_CASE("allclose and equal") {
  Tensor a = from_vector<double>({1.0, 2.0}), b = from_vector<double>({1.0 + 1e-9, 2.0});
  REQUIRE(allclose(a, b));
  REQUIRE_FALSE(equal(a, b));
  REQUIRE(equal(a, a.clone()));
  REQUIRE_FALSE(allclose(a, from_vector<double>({1.1, 2.0})));
}
