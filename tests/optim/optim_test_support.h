#pragma once
// Small helpers shared by the optim tests: parameters and gradients from plain numbers, and an
// element-wise comparison with a relative tolerance.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "core/core.h"

namespace dtrain::optim::testing {

inline Tensor parameter(const std::vector<double>& values, DType dtype = kFloat64) {
  Tensor param = from_vector(values).to(dtype);
  param.set_requires_grad();
  return param;
}

inline void set_gradient(const Tensor& param, const std::vector<double>& values) {
  Tensor tensor = param;
  tensor.set_grad(from_vector(values, param.shape()).to(param.dtype()));
}

inline std::vector<double> values_of(const Tensor& tensor) { return tensor.to_vector<double>(); }

// |actual - expected| <= tolerance * max(1, |expected|) for every element.
inline void check_close(const std::vector<double>& actual, const std::vector<double>& expected, double tolerance) {
  REQUIRE(actual.size() == expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    INFO("element " << i << ": got " << actual[i] << ", expected " << expected[i]);
    CHECK(std::abs(actual[i] - expected[i]) <= tolerance * std::max(1.0, std::abs(expected[i])));
  }
}

// The tiny problem most tests run: one parameter of three elements and three fixed gradients.
inline const std::vector<double> kInitialParameter = {1.0, -2.0, 0.5};
inline const std::vector<std::vector<double>> kGradients = {{0.1, -0.2, 0.3}, {0.4, 0.1, -0.5}, {-0.3, 0.2, 0.05}};

}  // namespace dtrain::optim::testing
