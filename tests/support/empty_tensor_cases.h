#pragma once
// Every public op (and the layer functions with kernels of their own) on inputs with a zero-size
// dim, with the result worked out by hand: its shape, and its values where it has any (a sum over
// nothing is 0, a mean NaN, a product with an empty inner dim zeros). Shared by the CPU test
// (tests/layers/empty_tensor_test.cpp), which checks each result against these expectations, and
// the GPU test (tests/cuda/test_empty_tensors.cpp), which also compares CUDA with the CPU.
// Reductions that have no value over an empty dim (max, min, argmax) must raise instead, naming
// the op, as PyTorch does.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/core.h"
#include "layers/layers.h"

namespace dtrain::test {

enum class EmptyExpected {
  NoElements,  // the result itself has a zero-size dim
  Zeros,       // every element 0 (sums, products over an empty inner dim)
  NaN,         // every element NaN (means: 0 / 0)
  FirstInput,  // equal to the first input (an index_add of nothing)
};

struct EmptyOpCase {
  const char* name;
  std::vector<Shape> input_shapes;  // floating leaves that require grad
  std::function<Tensor(const std::vector<Tensor>&, Device)> fn;
  Shape expected_shape;
  EmptyExpected expected = EmptyExpected::NoElements;
};

struct EmptyOpError {
  const char* name;
  std::vector<Shape> input_shapes;
  std::function<Tensor(const std::vector<Tensor>&, Device)> fn;
  const char* message;  // the start of the error's text
};

inline Tensor empty_case_indices(const std::vector<int64_t>& values, const Shape& shape, Device device) {
  return from_vector(values, shape, {.dtype = kInt64}).to(device);
}

// The inputs of a case: distinct, deterministic values in dtype on device, leaves that require grad.
inline std::vector<Tensor> empty_case_inputs(const std::vector<Shape>& shapes, DType dtype, Device device) {
  std::vector<Tensor> inputs;
  for (size_t i = 0; i < shapes.size(); ++i) {
    const int64_t count = shapes[i].numel();
    Tensor values = add(mul(arange(count, {.dtype = kFloat64}), 0.1), 0.3 + static_cast<double>(i));
    inputs.push_back(values.reshape(shapes[i]).to(dtype).to(device).detach().set_requires_grad(true));
  }
  return inputs;
}

inline const std::vector<EmptyOpCase>& empty_op_cases() {
  using V = const std::vector<Tensor>&;
  using E = EmptyExpected;
  static const std::vector<EmptyOpCase> cases{
      // elementwise, with broadcasting against empty and non-empty operands
      {"add", {{0, 4}, {1, 4}}, [](V x, Device) { return add(x[0], x[1]); }, {0, 4}},
      {"add alpha", {{3, 0}, {3, 0}}, [](V x, Device) { return add(x[0], x[1], 0.5); }, {3, 0}},
      {"sub", {{0, 4}, {0, 1}}, [](V x, Device) { return sub(x[0], x[1]); }, {0, 4}},
      {"mul", {{0, 4}, {4}}, [](V x, Device) { return mul(x[0], x[1]); }, {0, 4}},
      {"div", {{3, 0}, {3, 1}}, [](V x, Device) { return div(x[0], x[1]); }, {3, 0}},
      {"pow tensor", {{0, 4}, {0, 4}}, [](V x, Device) { return pow(x[0], x[1]); }, {0, 4}},
      {"maximum and minimum", {{0, 4}, {0, 4}}, [](V x, Device) { return maximum(x[0], x[1]) + minimum(x[0], x[1]); }, {0, 4}},
      {"scalar arithmetic", {{3, 0}}, [](V x, Device) { return (2.0 - x[0] * 3.0) / 4.0 + 1.5; }, {3, 0}},
      {"negation", {{3, 0}}, [](V x, Device) { return -x[0]; }, {3, 0}},
      {"comparisons", {{0, 4}, {0, 4}}, [](V x, Device) { return eq(x[0], x[1]).to(kInt64) + gt(x[0], 0.5).to(kInt64); }, {0, 4}},
      {"where", {{0, 4}, {0, 4}}, [](V x, Device) { return where(gt(x[0], x[1]), x[0], x[1]); }, {0, 4}},
      {"masked_fill", {{3, 0}}, [](V x, Device) { return masked_fill(x[0], lt(x[0], 0.0), 0.5); }, {3, 0}},
      {"clamp", {{3, 0}}, [](V x, Device) { return clamp(x[0], -0.5, 0.7); }, {3, 0}},
      // unary
      {"abs, sign, exp, log", {{0, 5}}, [](V x, Device) { return abs(x[0]) + sign(x[0]) + exp(x[0]) + log(x[0]); }, {0, 5}},
      {"sqrt, rsqrt, reciprocal, square", {{0, 5}},
       [](V x, Device) { return sqrt(x[0]) + rsqrt(x[0]) + reciprocal(x[0]) + square(x[0]); }, {0, 5}},
      {"tanh, sigmoid, relu", {{3, 0}}, [](V x, Device) { return tanh(x[0]) + sigmoid(x[0]) + relu(x[0]); }, {3, 0}},
      {"gelu", {{3, 0}}, [](V x, Device) { return gelu(x[0]) + gelu(x[0], GeluApproximation::Tanh); }, {3, 0}},
      {"sin, cos, pow scalar", {{3, 0}}, [](V x, Device) { return sin(x[0]) + cos(x[0]) + pow(x[0], 2.5) + pow(x[0], 3); }, {3, 0}},
      // reductions: over nothing, and over a non-empty dim of an empty tensor
      {"sum all", {{3, 0}}, [](V x, Device) { return sum(x[0]); }, {}, E::Zeros},
      {"sum over the empty dim", {{3, 0}}, [](V x, Device) { return sum(x[0], {1}); }, {3}, E::Zeros},
      {"sum over the other dim", {{3, 0}}, [](V x, Device) { return sum(x[0], {0}); }, {0}},
      {"sum keepdim", {{2, 0, 4}}, [](V x, Device) { return sum(x[0], {1}, true); }, {2, 1, 4}, E::Zeros},
      {"mean all", {{0, 4}}, [](V x, Device) { return mean(x[0]); }, {}, E::NaN},
      {"mean over the empty dim", {{0, 4}}, [](V x, Device) { return mean(x[0], {0}); }, {4}, E::NaN},
      {"var over the empty dim", {{3, 0}}, [](V x, Device) { return var(x[0], {1}); }, {3}, E::NaN},
      {"max over a non-empty dim", {{3, 0}}, [](V x, Device) { return max(x[0], 0).values; }, {0}},
      {"argmin over a non-empty dim", {{0, 4}}, [](V x, Device) { return argmin(x[0], 1); }, {0}},
      {"sum_to", {{0, 4}}, [](V x, Device) { return sum_to(x[0], {1, 4}); }, {1, 4}, E::Zeros},
      // softmax
      {"softmax", {{0, 5}}, [](V x, Device) { return softmax(x[0], 1); }, {0, 5}},
      {"log_softmax over the empty dim", {{3, 0}}, [](V x, Device) { return log_softmax(x[0], 1); }, {3, 0}},
      // matmul: an empty inner dim gives zeros, an empty outer dim an empty result
      {"matmul, empty inner dim", {{3, 0}, {0, 4}}, [](V x, Device) { return matmul(x[0], x[1]); }, {3, 4}, E::Zeros},
      {"matmul, empty rows", {{0, 5}, {5, 2}}, [](V x, Device) { return matmul(x[0], x[1]); }, {0, 2}},
      {"matmul, empty columns", {{3, 5}, {5, 0}}, [](V x, Device) { return matmul(x[0], x[1]); }, {3, 0}},
      {"matmul batched", {{2, 0, 5}, {5, 3}}, [](V x, Device) { return matmul(x[0], x[1]); }, {2, 0, 3}},
      // index
      {"gather", {{3, 0}}, [](V x, Device d) { return gather(x[0], 1, empty_case_indices({}, {3, 0}, d)); }, {3, 0}},
      {"index_select of no index", {{5, 3}}, [](V x, Device d) { return index_select(x[0], 0, empty_case_indices({}, {0}, d)); },
       {0, 3}},
      {"index_add of nothing", {{5, 3}, {0, 3}},
       [](V x, Device d) { return index_add(x[0], 0, empty_case_indices({}, {0}, d), x[1]); }, {5, 3}, E::FirstInput},
      {"scatter_add of nothing", {{4, 6}, {4, 0}},
       [](V x, Device d) { return scatter_add(x[0], 1, empty_case_indices({}, {4, 0}, d), x[1]); }, {4, 6}, E::FirstInput},
      // join and views
      {"cat with an empty part", {{3, 2}, {3, 0}}, [](V x, Device) { return cat({x[0], x[1]}, 1); }, {3, 2}, E::FirstInput},
      {"cat of empty tensors", {{0, 4}, {0, 4}}, [](V x, Device) { return cat({x[0], x[1]}, 0); }, {0, 4}},
      {"stack", {{0, 4}, {0, 4}}, [](V x, Device) { return stack({x[0], x[1]}, 0); }, {2, 0, 4}},
      {"views", {{2, 0, 3}},
       [](V x, Device) {
         Tensor y = x[0].permute({2, 0, 1}).reshape({3, 0}).transpose(0, 1).contiguous();
         return y.unsqueeze(0).squeeze(0).narrow(1, 1, 2).slice(1, 0, 2).view({0, 2}).clone();
       },
       {0, 2}},
      {"expand", {{1, 0}}, [](V x, Device) { return x[0].expand({5, 0}) * 2.0; }, {5, 0}},
      {"narrow to nothing", {{4, 3}}, [](V x, Device) { return x[0].narrow(0, 2, 0) + 1.0; }, {0, 3}},
      {"to another dtype and back", {{3, 0}}, [](V x, Device) { return x[0].to(kFloat64).to(x[0].dtype()); }, {3, 0}},
      // layers
      {"linear of no rows", {{0, 6}, {3, 6}, {3}}, [](V x, Device) { return linear(x[0], x[1], x[2]); }, {0, 3}},
      {"linear_gelu of no rows", {{0, 6}, {3, 6}, {3}}, [](V x, Device) { return linear_gelu(x[0], x[1], x[2]); }, {0, 3}},
      {"layer_norm of no rows", {{0, 6}, {6}, {6}}, [](V x, Device) { return layer_norm(x[0], {6}, x[1], x[2]); }, {0, 6}},
      {"cross_entropy of no rows", {{0, 4}},
       [](V x, Device d) { return cross_entropy(x[0], empty_case_indices({}, {0}, d)); }, {}, E::NaN},
      {"mse_loss of nothing", {{0, 4}, {0, 4}}, [](V x, Device) { return mse_loss(x[0], x[1]); }, {}, E::NaN},
      {"causal_softmax of no rows", {{0, 5, 5}}, [](V x, Device) { return causal_softmax(x[0]); }, {0, 5, 5}},
      {"embedding of no index", {{7, 3}}, [](V x, Device d) { return embedding(empty_case_indices({}, {2, 0}, d), x[0]); },
       {2, 0, 3}},
      {"dropout", {{0, 7}}, [](V x, Device) { return dropout(x[0], 0.3, true); }, {0, 7}},
  };
  return cases;
}

inline const std::vector<EmptyOpError>& empty_op_errors() {
  using V = const std::vector<Tensor>&;
  static const std::vector<EmptyOpError> errors{
      {"max of nothing", {{3, 0}}, [](V x, Device) { return max(x[0]); }, "max: expected a non-empty tensor"},
      {"min over the empty dim", {{3, 0}}, [](V x, Device) { return min(x[0], 1).values; }, "min: cannot reduce dim 1 of size 0"},
      {"argmax over the empty dim", {{0, 4}}, [](V x, Device) { return argmax(x[0], 0); },
       "argmax: cannot reduce dim 0 of size 0"},
  };
  return errors;
}

}  // namespace dtrain::test
