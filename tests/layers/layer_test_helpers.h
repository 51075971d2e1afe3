#pragma once
// Shared by the layer tests: random float64 inputs and gradchecks of functions and modules.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "core/core.h"
#include "layers/layers.h"

namespace dtrain::test {

inline void require_gradcheck(const autograd::DifferentiableFunction& fn, const std::vector<Tensor>& inputs,
                              autograd::GradcheckOptions options = {}) {
  autograd::GradcheckResult result = autograd::gradcheck(fn, inputs, options);
  INFO(result.message);
  REQUIRE(result.passed);
}

// Whether a and b hold the same bits (T is their element type).
template <typename T>
bool same_bits(const Tensor& a, const Tensor& b) {
  const std::vector<T> x = a.to_vector<T>(), y = b.to_vector<T>();
  return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(T)) == 0;
}

// N(0, 1) values from a private generator (the default one is left alone), float64.
inline Tensor random_tensor(const Shape& shape, uint64_t seed, bool requires_grad = true) {
  Generator generator(seed);
  Tensor values = randn(shape, {.dtype = kFloat64}, &generator);
  values.set_requires_grad(requires_grad);
  return values;
}

// Converts module to float64 and checks d output / d input and d output / d every parameter.
inline void require_module_gradcheck(Module& module, const Tensor& input, autograd::GradcheckOptions options = {}) {
  module.to(kFloat64);
  std::vector<Tensor> inputs{input};
  for (const Tensor& parameter : module.parameters()) inputs.push_back(parameter);
  require_gradcheck([&module](const std::vector<Tensor>& in) { return module(in[0]); }, inputs, options);
}

inline std::vector<std::string> names_of(const std::vector<NamedTensor>& named) {
  std::vector<std::string> names;
  for (const auto& entry : named) names.push_back(entry.first);
  return names;
}

}  // namespace dtrain::test
