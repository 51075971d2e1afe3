// Backward of reductions, softmax, indexing and joining: gradients worked out by hand.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include "autograd/autograd.h"
#include "core/core.h"

using namespace dtrain;

namespace {
Tensor leaf(std::vector<double> values, const Shape& shape) {
  return from_vector(values, shape).set_requires_grad();
}
}  // namespace

TEST_CASE("backward of sum, mean and var") {
  Tensor x = leaf({1, 2, 3, 4, 5, 6}, {2, 3});
  sum(x, {1}).backward(from_vector<double>({1, 2}, {2}));
  REQUIRE(x.grad().to_vector<double>() == std::vector<double>{1, 1, 1, 2, 2, 2});

  Tensor y = leaf({1, 2, 3, 4, 5, 6}, {2, 3});
  mean(y, {0}, true).backward(from_vector<double>({2, 4, 6}, {1, 3}));
  REQUIRE(y.grad().to_vector<double>() == std::vector<double>{1, 2, 3, 1, 2, 3});

  // d var / dx_i = 2 (x_i - mean) / (N - 1): row [1, 2, 6] has mean 3.
  Tensor z = leaf({1, 2, 6}, {1, 3});
  var(z, {1}).sum().backward();
  std::vector<double> grad = z.grad().to_vector<double>();
  REQUIRE(grad[0] == Approx(-2.0));
  REQUIRE(grad[1] == Approx(-1.0));
  REQUIRE(grad[2] == Approx(3.0));
}

TEST_CASE("backward of max and min") {
  Tensor x = leaf({1, 5, 2, 7, 0, 7}, {2, 3});
  max(x, 1).values.backward(from_vector<double>({10, 20}, {2}));
  REQUIRE(x.grad().to_vector<double>() == std::vector<double>{0, 10, 0, 20, 0, 0});  // first of the tied 7s

  Tensor y = leaf({1, 5, 2, 7, 0, 7}, {2, 3});
  min(y, 0, true).values.sum().backward();
  REQUIRE(y.grad().to_vector<double>() == std::vector<double>{1, 0, 1, 0, 1, 0});

  Tensor z = leaf({3, 1, 3, 2}, {4});
  max(z).backward();  // ties share the gradient evenly
  REQUIRE(z.grad().to_vector<double>() == std::vector<double>{0.5, 0, 0.5, 0});
}

TEST_CASE("backward of softmax and log_softmax") {
  Tensor x = leaf({0.5, -1, 2}, {1, 3});
  Tensor y = softmax(x, 1);
  std::vector<double> p = y.to_vector<double>();
  // Only the second output's gradient: d p_1 / d x_j = p_1 (delta_1j - p_j).
  y.backward(from_vector<double>({0, 1, 0}, {1, 3}));
  std::vector<double> grad = x.grad().to_vector<double>();
  for (int j = 0; j < 3; ++j) REQUIRE(grad[j] == Approx(p[1] * ((j == 1 ? 1.0 : 0.0) - p[j])));

  Tensor u = leaf({0.5, -1, 2}, {3});
  log_softmax(u, 0).sum().backward();  // d/dx_j sum_i log p_i = 1 - 3 p_j
  std::vector<double> q = softmax(u.detach(), 0).to_vector<double>();
  std::vector<double> log_grad = u.grad().to_vector<double>();
  for (int j = 0; j < 3; ++j) REQUIRE(log_grad[j] == Approx(1.0 - 3.0 * q[j]));
}

TEST_CASE("backward of gather, scatter_add, index_select and index_add") {
  Tensor x = leaf({1, 2, 3, 4}, {2, 2});
  gather(x, 1, from_vector<int64_t>({1, 1, 0, 0, 0, 1}, {2, 3})).sum().backward();
  REQUIRE(x.grad().to_vector<double>() == std::vector<double>{1, 2, 2, 1});  // counts of each position

  Tensor base = leaf({0, 0, 0}, {1, 3});
  Tensor source = leaf({1, 2, 3, 4}, {1, 4});  // larger than the index: its last element gets no gradient
  Tensor out = scatter_add(base, 1, from_vector<int64_t>({2, 0}, {1, 2}), source);
  out.backward(from_vector<double>({10, 20, 30}, {1, 3}));
  REQUIRE(base.grad().to_vector<double>() == std::vector<double>{10, 20, 30});
  REQUIRE(source.grad().to_vector<double>() == std::vector<double>{30, 10, 0, 0});

  Tensor table = leaf({1, 2, 3, 4, 5, 6}, {3, 2});
  index_select(table, 0, from_vector<int32_t>({2, 2, 0})).backward(from_vector<double>({1, 2, 3, 4, 5, 6}, {3, 2}));
  REQUIRE(table.grad().to_vector<double>() == std::vector<double>{5, 6, 0, 0, 4, 6});

  Tensor target = leaf({0, 0, 0}, {3});
  Tensor rows = leaf({1, 2}, {2});
  index_add(target, 0, from_vector<int64_t>({2, 2}), rows).backward(from_vector<double>({7, 8, 9}, {3}));
  REQUIRE(target.grad().to_vector<double>() == std::vector<double>{7, 8, 9});
  REQUIRE(rows.grad().to_vector<double>() == std::vector<double>{9, 9});
}

TEST_CASE("backward of cat, stack and split") {
  Tensor a = leaf({1, 2}, {1, 2}), b = leaf({3, 4, 5, 6}, {2, 2});
  cat({a, b}, 0).backward(from_vector<double>({1, 2, 3, 4, 5, 6}, {3, 2}));
  REQUIRE(a.grad().to_vector<double>() == std::vector<double>{1, 2});
  REQUIRE(b.grad().to_vector<double>() == std::vector<double>{3, 4, 5, 6});

  Tensor c = leaf({1, 2}, {2}), d = leaf({3, 4}, {2});
  stack({c, d}, 1).backward(from_vector<double>({1, 2, 3, 4}, {2, 2}));
  REQUIRE(c.grad().to_vector<double>() == std::vector<double>{1, 3});
  REQUIRE(d.grad().to_vector<double>() == std::vector<double>{2, 4});

  Tensor e = leaf({1, 2, 3, 4, 5}, {5});
  std::vector<Tensor> pieces = split(e, 2);
  add(mul(pieces[0].sum(), 2.0), mul(pieces[2].sum(), 3.0)).backward();
  REQUIRE(e.grad().to_vector<double>() == std::vector<double>{2, 2, 0, 0, 3});
}
