// Every public op (and the layer functions with CPU fast paths) on CUDA against the CPU, forward
// and backward: the same inputs as float64 and float32 leaves on both devices, loss = sum(out *
// fixed weights), then outputs and input gradients compared (tolerances as in
// tests/cuda/cuda_test_support.h, float32 at 1e-4 relative). Ends with a few steps
// of MLP training on both devices.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "layers/layers.h"
#include "optim/optim.h"
#include "tests/cuda/cuda_test_support.h"

using namespace dtrain;
using namespace dtrain::cuda_test;

namespace {

using OpFunction = std::function<Tensor(const std::vector<Tensor>&, Device)>;

struct OpCase {
  const char* name;
  std::vector<Shape> input_shapes;
  OpFunction fn;
  bool positive_inputs = false;  // log, sqrt, pow of a real exponent, division
};

Tensor index_tensor(const std::vector<int64_t>& values, const Shape& shape, Device device) {
  return from_vector(values, shape, {.dtype = kInt64}).to(device);
}

const std::vector<OpCase>& op_cases() {
  using V = const std::vector<Tensor>&;
  static const std::vector<OpCase> cases{
      // elementwise with broadcasting
      {"add", {{6, 7}, {1, 7}}, [](V x, Device) { return add(x[0], x[1]); }},
      {"add alpha", {{6, 7}, {6, 7}}, [](V x, Device) { return add(x[0], x[1], 0.5); }},
      {"sub", {{6, 7}, {6, 1}}, [](V x, Device) { return sub(x[0], x[1]); }},
      {"mul", {{6, 7}, {7}}, [](V x, Device) { return mul(x[0], x[1]); }},
      {"div", {{6, 7}, {6, 7}}, [](V x, Device) { return div(x[0], x[1]); }, true},
      {"pow tensor", {{6, 7}, {6, 7}}, [](V x, Device) { return pow(x[0], x[1]); }, true},
      {"maximum", {{6, 7}, {6, 7}}, [](V x, Device) { return maximum(x[0], x[1]); }},
      {"minimum", {{6, 7}, {6, 7}}, [](V x, Device) { return minimum(x[0], x[1]); }},
      {"scalar arithmetic", {{6, 7}}, [](V x, Device) { return (2.0 - x[0] * 3.0) / 4.0 + 1.5; }},
      {"negation", {{6, 7}}, [](V x, Device) { return -x[0]; }},
      {"where", {{6, 7}, {6, 7}}, [](V x, Device) { return where(gt(x[0], x[1]), x[0], x[1] * 2.0); }},
      {"masked_fill", {{6, 7}}, [](V x, Device) { return masked_fill(x[0], lt(x[0], 0.0), 0.5); }},
      {"clamp", {{6, 7}}, [](V x, Device) { return clamp(x[0], -0.5, 0.7); }},
      {"comparisons", {{6, 7}, {6, 7}},
       [](V x, Device) { return add(add(eq(x[0], x[1]).to(kInt64), ge(x[0], x[1]).to(kInt64)), ne(x[0], 0.3).to(kInt64)); }},
      // unary
      {"abs", {{6, 7}}, [](V x, Device) { return abs(x[0]); }},
      {"sign", {{6, 7}}, [](V x, Device) { return sign(x[0]); }},
      {"exp", {{6, 7}}, [](V x, Device) { return exp(x[0]); }},
      {"log", {{6, 7}}, [](V x, Device) { return log(x[0]); }, true},
      {"sqrt", {{6, 7}}, [](V x, Device) { return sqrt(x[0]); }, true},
      {"rsqrt", {{6, 7}}, [](V x, Device) { return rsqrt(x[0]); }, true},
      {"reciprocal", {{6, 7}}, [](V x, Device) { return reciprocal(x[0]); }, true},
      {"square", {{6, 7}}, [](V x, Device) { return square(x[0]); }},
      {"tanh", {{6, 7}}, [](V x, Device) { return tanh(x[0]); }},
      {"sigmoid", {{6, 7}}, [](V x, Device) { return sigmoid(x[0]); }},
      {"relu", {{6, 7}}, [](V x, Device) { return relu(x[0]); }},
      {"gelu", {{6, 7}}, [](V x, Device) { return gelu(x[0]); }},
      {"gelu tanh", {{6, 7}}, [](V x, Device) { return gelu(x[0], GeluApproximation::Tanh); }},
      {"sin and cos", {{6, 7}}, [](V x, Device) { return sin(x[0]) + cos(x[0]); }},
      {"pow scalar", {{6, 7}}, [](V x, Device) { return pow(x[0], 2.5) + pow(x[0], 3); }, true},
      // reductions
      {"sum all", {{6, 7}}, [](V x, Device) { return sum(x[0]); }},
      {"sum dims", {{4, 5, 6}}, [](V x, Device) { return sum(x[0], {0, 2}, true); }},
      {"mean", {{4, 5, 6}}, [](V x, Device) { return mean(x[0], {1}); }},
      {"var", {{4, 5, 6}}, [](V x, Device) { return var(x[0], {2}); }},
      {"max all", {{6, 7}}, [](V x, Device) { return max(x[0]); }},
      {"min all", {{6, 7}}, [](V x, Device) { return min(x[0]); }},
      {"max dim", {{6, 7}}, [](V x, Device) { return max(x[0], 1).values; }},
      {"min dim", {{6, 7}}, [](V x, Device) { return min(x[0], 0, true).values; }},
      {"argmax and argmin", {{6, 7}}, [](V x, Device) { return add(argmax(x[0], 1), argmin(x[0], 0).sum()); }},
      {"sum_to", {{3, 6, 7}}, [](V x, Device) { return sum_to(x[0], {6, 1}); }},
      // softmax
      {"softmax", {{5, 9}}, [](V x, Device) { return softmax(x[0], 1); }},
      {"log_softmax", {{5, 9}}, [](V x, Device) { return log_softmax(x[0], 0); }},
      // matmul
      {"matmul", {{5, 8}, {8, 3}}, [](V x, Device) { return matmul(x[0], x[1]); }},
      {"matmul batched broadcast", {{2, 5, 8}, {8, 3}}, [](V x, Device) { return matmul(x[0], x[1]); }},
      {"matmul transposed", {{8, 5}, {3, 8}}, [](V x, Device) { return matmul(x[0].t(), x[1].t()); }},
      {"matmul vector", {{8}, {8, 3}}, [](V x, Device) { return matmul(x[0], x[1]); }},
      // index
      {"gather", {{4, 6}},
       [](V x, Device d) { return gather(x[0], 1, index_tensor({0, 5, 5, 2, 1, 1, 3, 0}, {4, 2}, d)); }},
      {"scatter_add", {{4, 6}, {4, 2}},
       [](V x, Device d) { return scatter_add(x[0], 1, index_tensor({0, 5, 5, 5, 1, 1, 3, 0}, {4, 2}, d), x[1]); }},
      {"index_select", {{5, 3}}, [](V x, Device d) { return index_select(x[0], 0, index_tensor({4, 0, 4, 2}, {4}, d)); }},
      {"index_add", {{5, 3}, {5, 2}},
       [](V x, Device d) { return index_add(x[0], 1, index_tensor({2, 2}, {2}, d), x[1]); }},
      // join and views
      {"cat", {{3, 4}, {3, 2}}, [](V x, Device) { return cat({x[0], x[1]}, 1); }},
      {"stack", {{3, 4}, {3, 4}}, [](V x, Device) { return stack({x[0], x[1]}, 1); }},
      {"split and chunk", {{6, 7}}, [](V x, Device) { return split(x[0], 3, 1)[1].sum() + chunk(x[0], 2, 0)[1]; }},
      {"views", {{4, 5, 6}},
       [](V x, Device) {
         Tensor y = x[0].permute({2, 0, 1}).contiguous().reshape({6, 20}).transpose(0, 1);
         return y.narrow(0, 2, 10).slice(1, 0, 6, 2).unsqueeze(0).squeeze(0) + x[0].select(1, 3).flatten().sum();
       }},
      {"expand", {{1, 7}}, [](V x, Device) { return x[0].expand({5, 7}) * 2.0; }},
      // layers (their CPU fast paths against the CUDA composed paths)
      {"linear", {{4, 6}, {3, 6}, {3}}, [](V x, Device) { return linear(x[0], x[1], x[2]); }},
      {"feed_forward_gelu", {{4, 6}, {8, 6}, {8}, {5, 8}, {5}},
       [](V x, Device) { return feed_forward_gelu(x[0], x[1], x[2], x[3], x[4]); }},
      {"feed_forward_gelu (hidden 16: the GELU epilogues apply)", {{3, 8}, {16, 8}, {16}, {8, 16}, {8}},
       [](V x, Device) { return feed_forward_gelu(x[0], x[1], x[2], x[3], x[4]); }},
      {"layer_norm", {{4, 6}, {6}, {6}}, [](V x, Device) { return layer_norm(x[0], {6}, x[1], x[2]); }},
      {"cross_entropy", {{5, 4}},
       [](V x, Device d) { return cross_entropy(x[0], index_tensor({3, 0, 1, 3, 2}, {5}, d)); }},
      {"cross_entropy with smoothing", {{5, 4}},
       [](V x, Device d) {
         return cross_entropy(x[0], index_tensor({3, 0, 1, 3, 2}, {5}, d), {.label_smoothing = 0.1});
       }},
      {"mse_loss", {{5, 4}, {5, 4}}, [](V x, Device) { return mse_loss(x[0], x[1]); }},
      {"causal_softmax", {{2, 5, 5}}, [](V x, Device) { return causal_softmax(x[0]); }},
      {"causal_attention", {{2, 5, 4}, {2, 5, 4}, {2, 5, 4}}, [](V x, Device) { return causal_attention(x[0], x[1], x[2]); }},
      {"embedding", {{7, 3}}, [](V x, Device d) { return embedding(index_tensor({6, 0, 6, 2}, {2, 2}, d), x[0]); }},
      {"dropout with one generator state", {{40, 7}},
       [](V x, Device) {
         Generator generator(99);
         return dropout(x[0], 0.3, true, &generator);
       }},
  };
  return cases;
}

void check_op(const OpCase& op, DType dtype) {
  std::vector<Tensor> cpu_inputs, gpu_inputs;
  for (size_t i = 0; i < op.input_shapes.size(); ++i) {
    Tensor values = wavy(op.input_shapes[i], kFloat64, 1.0, 0.3 + 0.9 * static_cast<double>(i));
    if (op.positive_inputs) values = add(values, 1.6);
    Tensor cpu_leaf = values.to(dtype).detach().set_requires_grad(true);
    Tensor gpu_leaf = values.to(dtype).to(gpu()).detach().set_requires_grad(true);
    cpu_inputs.push_back(cpu_leaf);
    gpu_inputs.push_back(gpu_leaf);
  }
  const std::string what = std::string(op.name) + " " + dtype_name(dtype);
  Tensor cpu_out = op.fn(cpu_inputs, Device::cpu());
  Tensor gpu_out = op.fn(gpu_inputs, gpu());
  REQUIRE(gpu_out.device() == gpu());
  // float32: the CPU's fused layer paths (LayerNorm, cross-entropy) and the CUDA composed ones
  // round differently along the way; 1e-4 relative still tells a wrong formula from rounding.
  Tolerance tolerance = tolerance_for(cpu_out.dtype());
  if (cpu_out.dtype() == kFloat32) tolerance = {1e-4, 1e-5};
  require_match(gpu_out, cpu_out, tolerance, what);
  if (!is_floating(cpu_out.dtype()) || !cpu_out.requires_grad()) return;

  // Fixed upstream weights make every output element matter differently.
  Tensor weights = wavy(cpu_out.shape(), kFloat64, 1.0, 2.1).to(dtype);
  sum(mul(cpu_out, weights)).backward();
  sum(mul(gpu_out, weights.to(gpu()))).backward();
  for (size_t i = 0; i < cpu_inputs.size(); ++i) {
    const Tensor cpu_grad = cpu_inputs[i].grad(), gpu_grad = gpu_inputs[i].grad();
    INFO(what << ": gradient of input " << i);
    REQUIRE(cpu_grad.defined() == gpu_grad.defined());
    if (cpu_grad.defined()) require_match(gpu_grad, cpu_grad, tolerance, what + " gradient " + std::to_string(i));
  }
}

}  // namespace

TEST_CASE("cuda ops: every public op matches the CPU forward and backward in float64") {
  for (const OpCase& op : op_cases()) check_op(op, kFloat64);
}

TEST_CASE("cuda ops: every public op matches the CPU forward and backward in float32") {
  for (const OpCase& op : op_cases()) check_op(op, kFloat32);
}

TEST_CASE("cuda ops: a CUDA tensor mixed with a CPU tensor raises naming both devices") {
  Tensor a = ones({3}, {.device = gpu()}), b = ones({3});
  CHECK_THROWS_WITH(add(a, b), Catch::Contains("cuda:0") && Catch::Contains("cpu"));
}

namespace {

// Trains a small MLP for a few steps on fixed data; returns the losses and the final weights.
std::pair<std::vector<double>, std::vector<Tensor>> train_mlp(Device device, DType dtype, bool adamw) {
  manual_seed(1234);  // the same initial weights on both devices (drawn on the CPU, then moved)
  auto model = std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
      std::make_shared<Linear>(12, 32), std::make_shared<ReLU>(), std::make_shared<Linear>(32, 16),
      std::make_shared<GELU>(), std::make_shared<Linear>(16, 5)});
  model->to(dtype);
  model->to(device);
  Tensor inputs = wavy({64, 12}, dtype, 1.0).to(device);
  Tensor targets = integers({64}, 0, 5).to(device);
  std::vector<Tensor> parameters = model->parameters();
  std::unique_ptr<optim::Optimizer> optimizer;
  // eps 1e-3: with the default 1e-8 a gradient that is zero up to rounding gets a full-size
  // step whose sign is the rounding's, and the two devices could part ways on that alone.
  if (adamw) optimizer = std::make_unique<optim::AdamW>(parameters, optim::AdamWOptions{.lr = 1e-2, .eps = 1e-3, .weight_decay = 0.1});
  else optimizer = std::make_unique<optim::SGD>(parameters, optim::SGDOptions{.lr = 0.1, .momentum = 0.9});
  std::vector<double> losses;
  for (int step = 0; step < 8; ++step) {
    optimizer->zero_grad();
    Tensor loss = cross_entropy((*model)(inputs), targets);
    loss.backward();
    optim::clip_grad_norm(parameters, 1.0);
    optimizer->step();
    losses.push_back(loss.item());
  }
  std::vector<Tensor> weights;
  for (const Tensor& parameter : parameters) weights.push_back(parameter.detach());
  return {losses, weights};
}

}  // namespace

TEST_CASE("cuda training: a few MLP steps match the CPU, step by step") {
  for (DType dtype : {kFloat64, kFloat32}) {
    for (bool adamw : {false, true}) {
      auto [cpu_losses, cpu_weights] = train_mlp(Device::cpu(), dtype, adamw);
      auto [gpu_losses, gpu_weights] = train_mlp(gpu(), dtype, adamw);
      const std::string what = std::string(adamw ? "AdamW " : "SGD ") + dtype_name(dtype);
      const double tolerance = dtype == kFloat64 ? 1e-10 : 2e-4;
      for (size_t step = 0; step < cpu_losses.size(); ++step) {
        INFO(what << " step " << step);
        CHECK(gpu_losses[step] == Approx(cpu_losses[step]).epsilon(tolerance).margin(tolerance));
      }
      CHECK(cpu_losses.back() < cpu_losses.front());  // it trained
      for (size_t i = 0; i < cpu_weights.size(); ++i) {
        require_match(gpu_weights[i], cpu_weights[i], Tolerance{tolerance, tolerance}, what + " parameter " + std::to_string(i));
      }
    }
  }
}
