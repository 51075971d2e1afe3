// What every optimizer gets from the Optimizer base: param groups, zero_grad, skipping
// parameters without gradients, state dicts, memory accounting, and the two update paths.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "optim/adam.h"
#include "optim/adamw.h"
#include "optim/sgd.h"
#include "tests/optim/optim_test_support.h"

using namespace dtrain;
using namespace dtrain::optim;
using namespace dtrain::optim::testing;

namespace {

std::string error_message(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.what();
  }
  FAIL("expected a dtrain::Error");
  return {};
}

// The same gradients for the same step, in any run: drawn from a generator seeded by the step.
void set_random_gradients(const std::vector<Tensor>& params, int step) {
  Generator generator(1000 + static_cast<uint64_t>(step));
  for (const Tensor& param : params) {
    Tensor tensor = param;
    tensor.set_grad(randn(param.shape(), {.dtype = param.dtype()}, &generator));
  }
}

std::vector<Tensor> random_parameters(const std::vector<Shape>& shapes, DType dtype = kFloat32, uint64_t seed = 7) {
  Generator generator(seed);
  std::vector<Tensor> params;
  for (const Shape& shape : shapes) {
    Tensor param = randn(shape, {.dtype = dtype}, &generator);
    param.set_requires_grad();
    params.push_back(param);
  }
  return params;
}

std::vector<Tensor> clones(const std::vector<Tensor>& params) {
  std::vector<Tensor> copies;
  for (const Tensor& param : params) {
    Tensor copy = param.detach().clone();
    copy.set_requires_grad();
    copies.push_back(copy);
  }
  return copies;
}

std::unique_ptr<AdamW> two_group_adamw(const std::vector<Tensor>& params, double lr = 0.01) {
  return std::make_unique<AdamW>(std::vector<ParamGroupOptions<AdamWOptions>>{
      {.params = {params[0], params[1]}, .options = {.lr = lr, .weight_decay = 0.1, .amsgrad = true}},
      {.params = {params[2]}, .options = {.lr = lr / 10, .betas = {0.8, 0.99}, .weight_decay = 0.0}}});
}

}  // namespace

TEST_CASE("each param group uses its own learning rate", "[optim][groups]") {
  Tensor a = parameter({1.0, 2.0});
  Tensor b = parameter({3.0});
  SGD sgd({{.params = {a}, .options = {.lr = 0.1}}, {.params = {b}, .options = {.lr = 0.01}}});
  set_gradient(a, {1.0, -1.0});
  set_gradient(b, {2.0});
  sgd.step();
  check_close(values_of(a), {1.0 - 0.1, 2.0 + 0.1}, 1e-15);
  check_close(values_of(b), {3.0 - 0.02}, 1e-15);
  CHECK(sgd.num_param_groups() == 2);
  CHECK(sgd.lr(0) == 0.1);
  CHECK(sgd.lr(1) == 0.01);
}

TEST_CASE("a param group behaves as an optimizer of its own with its options", "[optim][groups]") {
  std::vector<Tensor> grouped = random_parameters({{4, 3}, {5}, {2, 2}});
  std::vector<Tensor> alone = clones(grouped);
  auto optimizer = two_group_adamw(grouped);
  AdamW first({alone[0], alone[1]}, {.lr = 0.01, .weight_decay = 0.1, .amsgrad = true});
  AdamW second({alone[2]}, {.lr = 0.001, .betas = {0.8, 0.99}, .weight_decay = 0.0});
  for (int step = 0; step < 3; ++step) {
    set_random_gradients(grouped, step);
    set_random_gradients(alone, step);
    optimizer->step();
    first.step();
    second.step();
  }
  for (size_t i = 0; i < grouped.size(); ++i) CHECK(equal(grouped[i], alone[i]));
}

TEST_CASE("set_lr changes every group or one, and hyper-parameters are checked", "[optim][groups]") {
  std::vector<Tensor> params = random_parameters({{3}, {2}, {1}});
  auto optimizer = two_group_adamw(params);
  optimizer->set_lr(0.5);
  CHECK(optimizer->lr(0) == 0.5);
  CHECK(optimizer->lr(1) == 0.5);
  optimizer->set_lr(1, 0.25);
  CHECK(optimizer->lr(1) == 0.25);
  CHECK(optimizer->options(1).lr == 0.25);
  optimizer->set_hyperparameter(0, "weight_decay", 0.3);
  CHECK(optimizer->options(0).weight_decay == 0.3);
  CHECK_THROWS_WITH(optimizer->set_lr(-1.0), Catch::Contains("lr >= 0") && Catch::Contains("param group 0"));
  CHECK(optimizer->lr(0) == 0.5);  // unchanged by the refused call
  CHECK_THROWS_WITH(optimizer->set_hyperparameter(0, "momentum", 0.9),
                    Catch::Contains("'momentum'") && Catch::Contains("beta1"));
  CHECK_THROWS_WITH(optimizer->lr(2), Catch::Contains("below 2"));
}

TEST_CASE("zero_grad leaves gradients undefined", "[optim]") {
  std::vector<Tensor> params = random_parameters({{3}, {2}});
  SGD sgd(params, {.lr = 0.1});
  set_random_gradients(params, 0);
  sgd.zero_grad();
  for (const Tensor& param : params) CHECK_FALSE(param.grad().defined());
}

TEST_CASE("parameters without a gradient are skipped", "[optim]") {
  std::vector<Tensor> params = random_parameters({{3}, {2}});
  const Tensor untouched = params[1].detach().clone();
  AdamW adamw(params, {.lr = 0.1});
  params[0].set_grad(ones({3}));
  adamw.step();
  CHECK(equal(params[1], untouched));
  CHECK(adamw.state(0).step == 1);
  CHECK(adamw.state(1).step == 0);
  CHECK(adamw.state(1).tensors.empty());
  const StateDict dict = adamw.state_dict();
  CHECK(dict.count("state.0.exp_avg") == 1);
  CHECK(dict.count("state.1.step") == 0);
}

TEST_CASE("the state dict has stable keys, float64 hyper-parameters and int64 steps", "[optim][state_dict]") {
  std::vector<Tensor> params = random_parameters({{4, 3}, {5}, {2, 2}});
  auto optimizer = two_group_adamw(params);
  set_random_gradients(params, 0);
  optimizer->step();
  const StateDict dict = optimizer->state_dict();
  std::vector<std::string> keys;
  for (const auto& [key, tensor] : dict) keys.push_back(key);
  const std::vector<std::string> expected = {
      "param_groups.0.amsgrad", "param_groups.0.beta1", "param_groups.0.beta2", "param_groups.0.eps",
      "param_groups.0.lr", "param_groups.0.params", "param_groups.0.weight_decay",
      "param_groups.1.amsgrad", "param_groups.1.beta1", "param_groups.1.beta2", "param_groups.1.eps",
      "param_groups.1.lr", "param_groups.1.params", "param_groups.1.weight_decay",
      "state.0.exp_avg", "state.0.exp_avg_sq", "state.0.max_exp_avg_sq", "state.0.step",
      "state.1.exp_avg", "state.1.exp_avg_sq", "state.1.max_exp_avg_sq", "state.1.step",
      "state.2.exp_avg", "state.2.exp_avg_sq", "state.2.step"};
  CHECK(keys == expected);
  CHECK(dict.at("param_groups.1.lr").dtype() == kFloat64);
  CHECK(dict.at("param_groups.1.lr").item() == 0.001);
  CHECK(dict.at("param_groups.1.beta1").item() == 0.8);
  CHECK(dict.at("param_groups.0.amsgrad").item() == 1.0);
  CHECK(dict.at("param_groups.1.params").to_vector<int64_t>() == std::vector<int64_t>{2});
  CHECK(dict.at("param_groups.0.params").to_vector<int64_t>() == std::vector<int64_t>{0, 1});
  CHECK(dict.at("state.2.step").dtype() == kInt64);
  CHECK(dict.at("state.2.step").item() == 1.0);
  CHECK(dict.at("state.0.exp_avg").shape() == Shape{4, 3});
  CHECK(dict.at("state.0.exp_avg").dtype() == kFloat32);

  // A snapshot: later steps do not change a dict already taken.
  const Tensor saved = dict.at("state.0.exp_avg").clone();
  set_random_gradients(params, 1);
  optimizer->step();
  CHECK(equal(dict.at("state.0.exp_avg"), saved));
}

TEST_CASE("save, load into a new optimizer, continue: identical to an uninterrupted run", "[optim][state_dict]") {
  const std::vector<Shape> shapes = {{4, 3}, {5}, {2, 2}};
  SECTION("AdamW with amsgrad, two groups") {
    std::vector<Tensor> straight = random_parameters(shapes);
    std::vector<Tensor> first_half = random_parameters(shapes);
    auto uninterrupted = two_group_adamw(straight);
    auto before = two_group_adamw(first_half);
    for (int step = 0; step < 6; ++step) {
      set_random_gradients(straight, step);
      if (step == 0) straight[1].set_grad(Tensor());  // parameter 1 misses a step: its own step count
      uninterrupted->step();
    }
    for (int step = 0; step < 3; ++step) {
      set_random_gradients(first_half, step);
      if (step == 0) first_half[1].set_grad(Tensor());
      before->step();
    }
    const StateDict dict = before->state_dict();
    CHECK(dict.at("state.1.step").item() == 2.0);
    std::vector<Tensor> resumed = clones(first_half);
    auto after = two_group_adamw(resumed, /*lr=*/0.5);  // the saved lr replaces this one
    after->load_state_dict(dict);
    CHECK(after->lr(0) == 0.01);
    CHECK(after->state(1).step == 2);
    for (int step = 3; step < 6; ++step) {
      set_random_gradients(resumed, step);
      after->step();
    }
    for (size_t i = 0; i < shapes.size(); ++i) CHECK(equal(resumed[i], straight[i]));
  }
  SECTION("SGD with momentum") {
    std::vector<Tensor> straight = random_parameters(shapes, kFloat64);
    std::vector<Tensor> first_half = random_parameters(shapes, kFloat64);
    const SGDOptions options{.lr = 0.05, .momentum = 0.9, .dampening = 0.1, .weight_decay = 1e-3};
    SGD uninterrupted(straight, options);
    SGD before(first_half, options);
    for (int step = 0; step < 5; ++step) {
      set_random_gradients(straight, step);
      uninterrupted.step();
    }
    for (int step = 0; step < 2; ++step) {
      set_random_gradients(first_half, step);
      before.step();
    }
    std::vector<Tensor> resumed = clones(first_half);
    SGD after(resumed, options);
    after.load_state_dict(before.state_dict());
    for (int step = 2; step < 5; ++step) {
      set_random_gradients(resumed, step);
      after.step();
    }
    for (size_t i = 0; i < shapes.size(); ++i) CHECK(equal(resumed[i], straight[i]));
  }
}

TEST_CASE("load_state_dict reports every bad key in one error and changes nothing", "[optim][state_dict]") {
  std::vector<Tensor> params = random_parameters({{3}, {2}});
  Adam adam({{.params = params, .options = {.lr = 0.01}, .names = {"fc.weight", "fc.bias"}}});
  set_random_gradients(params, 0);
  adam.step();
  const StateDict good = adam.state_dict();
  const Tensor exp_avg_before = adam.state(0).tensors.at("exp_avg").clone();

  StateDict bad = good;
  bad["state.0.exp_avg"] = zeros({2, 2});
  bad["param_groups.0.lr"] = scalar_tensor(0.1, kFloat32);
  bad.erase("state.1.exp_avg_sq");
  bad["state.9.exp_avg"] = zeros({3});
  bad["bogus"] = zeros({1});
  const std::string message = error_message([&] { adam.load_state_dict(bad); });
  CHECK_THAT(message, Catch::Contains("Adam.load_state_dict"));
  CHECK_THAT(message, Catch::Contains("5 problems"));
  CHECK_THAT(message, Catch::Contains("key 'state.0.exp_avg' (parameter 'fc.weight'): expected shape [3] and dtype "
                                      "float32, got shape [2, 2] and dtype float32"));
  CHECK_THAT(message, Catch::Contains("key 'param_groups.0.lr': expected a one-element float64 tensor, got dtype float32"));
  CHECK_THAT(message, Catch::Contains("missing key 'state.1.exp_avg_sq' (parameter 'fc.bias')"));
  CHECK_THAT(message, Catch::Contains("unexpected key 'state.9.exp_avg'"));
  CHECK_THAT(message, Catch::Contains("unexpected key 'bogus'"));
  // Nothing was loaded: the state and the lr are what they were.
  CHECK(equal(adam.state(0).tensors.at("exp_avg"), exp_avg_before));
  CHECK(adam.lr() == 0.01);

  // An invalid saved hyper-parameter and a changed group layout are reported too.
  StateDict invalid = good;
  invalid["param_groups.0.beta2"] = scalar_tensor(1.5, kFloat64);
  invalid["param_groups.0.params"] = from_vector(std::vector<int64_t>{1, 0});
  const std::string invalid_message = error_message([&] { adam.load_state_dict(invalid); });
  CHECK_THAT(invalid_message, Catch::Contains("betas.second") && Catch::Contains("1.5"));
  CHECK_THAT(invalid_message, Catch::Contains("expected the int64 parameter indices [0, 1], got [1, 0]"));

  // The untouched dict loads.
  adam.load_state_dict(good);
}

TEST_CASE("another optimizer's state dict is refused with what differs", "[optim][state_dict]") {
  std::vector<Tensor> params = random_parameters({{3}});
  SGD sgd(params, {.lr = 0.1, .momentum = 0.9});
  set_random_gradients(params, 0);
  sgd.step();
  Adam adam(params);
  const std::string message = error_message([&] { adam.load_state_dict(sgd.state_dict()); });
  CHECK_THAT(message, Catch::Contains("missing key 'param_groups.0.beta1'"));
  CHECK_THAT(message, Catch::Contains("unexpected key 'param_groups.0.momentum'"));
  CHECK_THAT(message, Catch::Contains("missing key 'state.0.exp_avg'"));
  CHECK_THAT(message, Catch::Contains("unexpected key 'state.0.momentum_buffer'"));
}

TEST_CASE("optimizer state is counted under MemoryTag::OptimizerState", "[optim][memory]") {
  auto state_bytes = [] { return memory_stats()[MemoryTag::OptimizerState].current; };
  const int64_t before = state_bytes();
  Tensor param = parameter(std::vector<double>(1000, 0.5), kFloat32);
  {
    AdamW adamw({param});
    param.set_grad(ones({1000}));
    adamw.step();
    CHECK(state_bytes() - before == 2 * 1000 * 4);  // exp_avg and exp_avg_sq, float32

    AdamW restored({param});
    restored.load_state_dict(adamw.state_dict());
    CHECK(state_bytes() - before == 4 * 1000 * 4);
  }
  CHECK(state_bytes() == before);
  {
    SGD sgd({param}, {.lr = 0.1, .momentum = 0.9});
    sgd.step();
    CHECK(state_bytes() - before == 1000 * 4);  // the momentum buffer
    Adam adam({param}, {.amsgrad = true});
    adam.step();
    CHECK(state_bytes() - before == 4 * 1000 * 4);
  }
}

TEST_CASE("the fused CPU loop and the tensor-op path compute bitwise the same updates", "[optim][fused]") {
  // Large enough that the fused loop runs on several threads.
  const std::vector<Shape> shapes = {{300, 200}, {7}};
  using Factory = std::function<std::unique_ptr<Optimizer>(const std::vector<Tensor>&)>;
  const std::vector<std::pair<std::string, Factory>> optimizers = {
      {"SGD nesterov", [](const auto& p) {
         return std::make_unique<SGD>(p, SGDOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true});
       }},
      {"SGD dampening", [](const auto& p) {
         return std::make_unique<SGD>(p, SGDOptions{.lr = 0.1, .momentum = 0.8, .dampening = 0.3});
       }},
      {"Adam L2 amsgrad", [](const auto& p) {
         return std::make_unique<Adam>(p, AdamOptions{.lr = 0.01, .weight_decay = 0.1, .amsgrad = true});
       }},
      {"AdamW", [](const auto& p) { return std::make_unique<AdamW>(p, AdamWOptions{.lr = 0.01, .weight_decay = 0.1}); }},
  };
  for (DType dtype : {kFloat32, kFloat64}) {
    for (const auto& [name, make] : optimizers) {
      INFO(name << " in " << dtype);
      std::vector<Tensor> fused_params = random_parameters(shapes, dtype);
      std::vector<Tensor> op_params = random_parameters(shapes, dtype);
      auto fused = make(fused_params);
      auto ops = make(op_params);
      ops->set_fused(false);
      for (int step = 0; step < 4; ++step) {
        set_random_gradients(fused_params, step);
        set_random_gradients(op_params, step);
        fused->step();
        ops->step();
      }
      // Bitwise: the fused loop rounds as the op chain does (no fused multiply-adds there).
      for (size_t i = 0; i < shapes.size(); ++i) CHECK(equal(fused_params[i], op_params[i]));
    }
  }
}

TEST_CASE("a strided parameter takes the tensor-op path with the same result", "[optim][fused]") {
  std::vector<Tensor> contiguous = random_parameters({{3, 4}}, kFloat64);
  Tensor base = contiguous[0].detach().t().contiguous();  // [4, 3], so base.t() holds the same values
  Tensor strided = base.t();
  strided.set_requires_grad();
  REQUIRE_FALSE(strided.is_contiguous());
  AdamW on_contiguous(contiguous, {.lr = 0.1});
  AdamW on_strided({strided}, {.lr = 0.1});
  for (int step = 0; step < 3; ++step) {
    set_random_gradients(contiguous, step);
    set_random_gradients({strided}, step);
    on_contiguous.step();
    on_strided.step();
  }
  CHECK(equal(strided, contiguous[0]));
}

TEST_CASE("optimizers refuse parameters they cannot own", "[optim]") {
  Tensor param = parameter({1.0, 2.0});
  CHECK_THROWS_WITH(SGD({param, param}), Catch::Contains("twice") && Catch::Contains("parameter 1"));
  CHECK_THROWS_WITH(SGD({Tensor()}), Catch::Contains("undefined"));
  CHECK_THROWS_WITH(SGD({from_vector(std::vector<int64_t>{1, 2})}), Catch::Contains("floating-point") &&
                                                                        Catch::Contains("int64"));
  Tensor produced = mul(param, 2.0);
  CHECK_THROWS_WITH(SGD({produced}), Catch::Contains("leaf"));
  CHECK_THROWS_WITH(SGD({{.params = {param}, .names = {"a", "b"}}}), Catch::Contains("2 names"));
}
