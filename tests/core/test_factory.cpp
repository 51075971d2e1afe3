// Factories and the counter-based random numbers.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/philox.h"
#include "dtrain.h"

using namespace dtrain;
using Catch::Contains;

TEST_CASE("constant factories") {
  REQUIRE(zeros({2, 2}).to_vector<float>() == std::vector<float>(4, 0.0f));
  REQUIRE(ones({3}, {.dtype = kInt32}).to_vector<int32_t>() == std::vector<int32_t>{1, 1, 1});
  REQUIRE(full({2}, 2.5, {.dtype = kFloat64}).to_vector<double>() == std::vector<double>{2.5, 2.5});
  REQUIRE(arange(0.0, 1.0, 0.25, {.dtype = kFloat64}).to_vector<double>() == std::vector<double>{0, 0.25, 0.5, 0.75});
  REQUIRE(arange(4).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3});
  REQUIRE(eye(3).to_vector<float>() == std::vector<float>{1, 0, 0, 0, 1, 0, 0, 0, 1});
  REQUIRE(zeros({0, 3}).numel() == 0);
  REQUIRE(scalar_tensor(4).dim() == 0);
  REQUIRE_THROWS_WITH(zeros({2, -1}), Contains("sizes must be non-negative, got shape [2, -1]"));
  REQUIRE_THROWS_WITH(arange(0.0, 1.0, 0.0), Contains("step must be non-zero"));
}

TEST_CASE("the same seed gives the same numbers, whatever the thread count") {
  int threads = num_threads();
  Generator generator(1234);
  set_num_threads(1);
  Tensor one_thread = randn({100001}, {}, &generator);
  generator.manual_seed(1234);
  set_num_threads(2);
  Tensor two_threads = randn({100001}, {}, &generator);
  set_num_threads(threads);
  REQUIRE(equal(one_thread, two_threads));
  Generator other(1235);
  REQUIRE_FALSE(equal(one_thread, randn({100001}, {}, &other)));
}

TEST_CASE("a generator advances: consecutive draws differ, and splitting a draw reproduces it") {
  Generator generator(7);
  Tensor first = rand({6}, {.dtype = kFloat64}, &generator);
  Tensor second = rand({6}, {.dtype = kFloat64}, &generator);
  REQUIRE_FALSE(equal(first, second));
  REQUIRE(generator.offset() == 6);  // 2 elements per Philox block
  generator.manual_seed(7);
  Tensor whole = rand({12}, {.dtype = kFloat64}, &generator);
  REQUIRE(whole.narrow(0, 0, 6).to_vector<double>() == first.to_vector<double>());
  REQUIRE(whole.narrow(0, 6, 6).to_vector<double>() == second.to_vector<double>());
}

TEST_CASE("Philox4x32-10 matches the Random123 known-answer vectors") {
  // Random123's kat_vectors: philox4x32_10 with counter 0 and key 0 gives
  // 6627e8d5 e169c58d bc57ac4c 9b00dbd8.
  PhiloxBlock block = philox4x32(0, 0);
  REQUIRE(block.lane[0] == 0x6627e8d5u);
  REQUIRE(block.lane[1] == 0xe169c58du);
  REQUIRE(block.lane[2] == 0xbc57ac4cu);
  REQUIRE(block.lane[3] == 0x9b00dbd8u);
}

TEST_CASE("distributions have the right moments") {
  Generator generator(42);
  const int64_t n = 200000;
  std::vector<double> normal_values = randn({n}, {.dtype = kFloat64}, &generator).to_vector<double>();
  double mean = 0, square = 0;
  for (double v : normal_values) {
    mean += v;
    square += v * v;
  }
  mean /= n;
  double variance = square / n - mean * mean;
  REQUIRE(std::abs(mean) < 0.01);  // standard error 1/sqrt(n) = 0.0022
  REQUIRE(std::abs(variance - 1.0) < 0.01);
  std::vector<double> uniform_values = uniform({n}, -1.0, 3.0, {.dtype = kFloat64}, &generator).to_vector<double>();
  double uniform_mean = 0;
  for (double v : uniform_values) {
    REQUIRE(v >= -1.0);
    REQUIRE(v < 3.0);
    uniform_mean += v / n;
  }
  REQUIRE(std::abs(uniform_mean - 1.0) < 0.02);  // sd of the mean: 4/sqrt(12 n) = 0.0026
  std::vector<float> coins = bernoulli({n}, 0.3, {}, &generator).to_vector<float>();
  double heads = 0;
  for (float c : coins) heads += c;
  REQUIRE(std::abs(heads / n - 0.3) < 0.01);
  REQUIRE_THROWS_WITH(bernoulli({2}, 1.5), Contains("probability in [0, 1], got 1.5"));
  REQUIRE_THROWS_WITH(randn({2}, {.dtype = kInt64}), Contains("expected a floating dtype, got int64"));
}
