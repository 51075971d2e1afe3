// Every differentiable op against central finite differences in float64, including broadcast
// and non-contiguous inputs.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "dtrain.h"

using namespace dtrain;
using autograd::gradcheck;

namespace {

// Deterministic float64 inputs in [low, high), requiring grad.
Tensor input(const Shape& shape, uint64_t seed, double low = -1.0, double high = 1.0) {
  Generator generator(seed);
  return uniform(shape, low, high, {.dtype = kFloat64}, &generator).set_requires_grad();
}

void check(const char* name, const autograd::DifferentiableFunction& fn, const std::vector<Tensor>& inputs,
           autograd::GradcheckOptions options = {}) {
  INFO(name);
  autograd::GradcheckResult result = gradcheck(fn, inputs, options);
  INFO(result.message);
  REQUIRE(result.passed);
}

}  // namespace

TEST_CASE("gradcheck: binary arithmetic with broadcasting") {
  Tensor a = input({3, 4}, 1), b = input({4}, 2), c = input({3, 1}, 3, 0.5, 2.0);
  check("add", [](auto& in) { return add(in[0], in[1]); }, {a, b});
  check("add alpha", [](auto& in) { return add(in[0], in[1], 2.5); }, {a, b});
  check("sub", [](auto& in) { return sub(in[0], in[1]); }, {a, c});
  check("mul", [](auto& in) { return mul(in[0], in[1]); }, {a, b});
  check("div", [](auto& in) { return div(in[0], in[1]); }, {a, c});
  check("pow tensor", [](auto& in) { return pow(in[1], in[0]); }, {a, c});
  check("maximum", [](auto& in) { return maximum(in[0], in[1]); }, {a, b});
  check("minimum", [](auto& in) { return minimum(in[0], in[1]); }, {a, b});
  check("scalar ops", [](auto& in) { return (2.0 - in[0]) * 3.0 / (in[1] + 4.0); }, {a, b});
}

TEST_CASE("gradcheck: unary math") {
  Tensor x = input({2, 3}, 4);
  Tensor positive = input({2, 3}, 5, 0.2, 2.0);
  check("neg", [](auto& in) { return neg(in[0]); }, {x});
  check("abs", [](auto& in) { return abs(in[0]); }, {x});
  check("exp", [](auto& in) { return exp(in[0]); }, {x});
  check("log", [](auto& in) { return log(in[0]); }, {positive});
  check("sqrt", [](auto& in) { return sqrt(in[0]); }, {positive});
  check("rsqrt", [](auto& in) { return rsqrt(in[0]); }, {positive});
  check("reciprocal", [](auto& in) { return reciprocal(in[0]); }, {positive});
  check("square", [](auto& in) { return square(in[0]); }, {x});
  check("tanh", [](auto& in) { return tanh(in[0]); }, {x});
  check("sigmoid", [](auto& in) { return sigmoid(in[0]); }, {x});
  check("relu", [](auto& in) { return relu(in[0]); }, {x});
  check("gelu erf", [](auto& in) { return gelu(in[0]); }, {x});
  check("gelu tanh", [](auto& in) { return gelu(in[0], GeluApproximation::Tanh); }, {x});
  check("sin", [](auto& in) { return sin(in[0]); }, {x});
  check("cos", [](auto& in) { return cos(in[0]); }, {x});
  check("pow scalar", [](auto& in) { return pow(in[0], 2.5); }, {positive});
  check("clamp", [](auto& in) { return clamp(in[0], -0.5, 0.5); }, {x});
}

TEST_CASE("gradcheck: selection") {
  Tensor a = input({3, 4}, 6), b = input({3, 4}, 7);
  check("where", [](auto& in) { return where(gt(in[0], in[1]), in[0], in[1] * 2.0); }, {a, b});
  check("masked_fill", [](auto& in) { return masked_fill(in[0], lt(in[0], 0.0), 3.0); }, {a});
}

TEST_CASE("gradcheck: views and copies") {
  Tensor x = input({2, 3, 4}, 8);
  check("view", [](auto& in) { return in[0].view({6, 4}) * 2.0; }, {x});
  check("reshape of transposed", [](auto& in) { return in[0].transpose(0, 2).reshape({4, 6}) * 2.0; }, {x});
  check("permute", [](auto& in) { return in[0].permute({2, 0, 1}) * 1.5; }, {x});
  check("slice with step", [](auto& in) { return in[0].slice(2, 1, 4, 2) * 3.0; }, {x});
  check("narrow", [](auto& in) { return in[0].narrow(1, 1, 2) * 3.0; }, {x});
  check("select", [](auto& in) { return in[0].select(1, 2) * 3.0; }, {x});
  check("expand", [](auto& in) { return in[0].narrow(0, 0, 1).expand({3, 3, 4}) * 2.0; }, {x});
  check("squeeze/unsqueeze", [](auto& in) { return in[0].unsqueeze(1).squeeze(1).flatten() * 2.0; }, {x});
  check("clone, contiguous", [](auto& in) { return in[0].t().contiguous().clone() * 2.0; }, {input({3, 2}, 9)});
  // Through float32 the finite difference needs a step float32 can resolve (rounding 6e-8).
  check("dtype round trip", [](auto& in) { return in[0].to(kFloat32).to(kFloat64) * 1.0; }, {input({3}, 10, 1.0, 2.0)},
        {.eps = 1e-3});
}

TEST_CASE("gradcheck: matmul, batched, broadcast and non-contiguous") {
  Tensor a = input({3, 4}, 11), b = input({4, 2}, 12);
  check("matmul", [](auto& in) { return matmul(in[0], in[1]); }, {a, b});
  check("matmul transposed operands", [](auto& in) { return matmul(in[1].t(), in[0].t()); }, {a, b});
  Tensor batched = input({2, 3, 4}, 13);
  check("batched with broadcast weight", [](auto& in) { return matmul(in[0], in[1]); }, {batched, b});
  check("vector @ matrix", [](auto& in) { return matmul(in[0], in[1]); }, {input({4}, 14), b});
  check("matrix @ vector", [](auto& in) { return matmul(in[0], in[1]); }, {a, input({4}, 15)});
  check("vector @ vector", [](auto& in) { return matmul(in[0], in[1]); }, {input({4}, 16), input({4}, 17)});
}

TEST_CASE("gradcheck: reductions") {
  Tensor x = input({3, 4}, 18);
  check("sum all", [](auto& in) { return sum(in[0]); }, {x});
  check("sum dims keepdim", [](auto& in) { return sum(in[0], {0}, true); }, {x});
  check("sum of transposed", [](auto& in) { return sum(in[0].t(), {-1}); }, {x});
  check("mean", [](auto& in) { return mean(in[0], {1}); }, {x});
  check("var", [](auto& in) { return var(in[0], {1}); }, {x});
  check("var all dims, no correction", [](auto& in) { return var(in[0], {0, 1}, 0); }, {x});
  check("max dim", [](auto& in) { return max(in[0], 1).values; }, {x});
  check("min dim keepdim", [](auto& in) { return min(in[0], 0, true).values; }, {x});
  check("max all", [](auto& in) { return max(in[0]); }, {x});
}

TEST_CASE("gradcheck: softmax and log_softmax over any dim") {
  Tensor x = input({3, 5}, 19);
  check("softmax last", [](auto& in) { return softmax(in[0], -1); }, {x});
  check("softmax first", [](auto& in) { return softmax(in[0], 0); }, {x});
  check("log_softmax", [](auto& in) { return log_softmax(in[0], 1); }, {x});
  check("log_softmax of transposed", [](auto& in) { return log_softmax(in[0].t(), -1); }, {x});
}

TEST_CASE("gradcheck: indexing and joining") {
  Tensor x = input({3, 4}, 20);
  Tensor index = from_vector<int64_t>({0, 3, 3, 1, 2, 0}, {3, 2});
  check("gather", [index](auto& in) { return gather(in[0], 1, index); }, {x});
  Tensor source = input({3, 2}, 21);
  check("scatter_add", [index](auto& in) { return scatter_add(in[0], 1, index, in[1]); }, {x, source});
  Tensor rows = from_vector<int64_t>({2, 0, 2});
  check("index_select", [rows](auto& in) { return index_select(in[0], 0, rows); }, {x});
  Tensor added = input({3, 4}, 22);
  check("index_add", [rows](auto& in) { return index_add(in[0], 0, rows, in[1]); }, {x, added});
  Tensor y = input({2, 4}, 23);
  check("cat", [](auto& in) { return cat({in[0], in[1] * 2.0}, 0); }, {x, y});
  check("stack", [](auto& in) { return stack({in[0], in[1]}, 1); }, {x, input({3, 4}, 24)});
  check("split", [](auto& in) {
    std::vector<Tensor> pieces = split(in[0], 3, 1);
    return pieces[0].sum() * 2.0 + pieces[1].sum() * 3.0;
  }, {x});
  check("chunk", [](auto& in) { return chunk(in[0], 3, 0)[1] * 2.0; }, {x});
}
