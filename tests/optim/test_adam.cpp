// Adam and AdamW against PyTorch's documented algorithms (torch.optim.Adam / AdamW), written
// out with plain doubles in the documented form: m_hat = m / (1 - beta1^t), v_hat = v / (1 -
// beta2^t), p -= lr * m_hat / (sqrt(v_hat) + eps).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "optim/adam.h"
#include "optim/adamw.h"
#include "tests/optim/optim_test_support.h"

using namespace dtrain;
using namespace dtrain::optim;
using namespace dtrain::optim::testing;

namespace {

struct AdamByHand {
  double lr, beta1, beta2, eps, weight_decay;
  bool decoupled;  // AdamW
  bool amsgrad;
};

std::vector<double> adam_by_hand(const AdamByHand& o, int steps) {
  std::vector<double> p = kInitialParameter;
  std::vector<double> m(p.size(), 0.0), v(p.size(), 0.0), v_max(p.size(), 0.0);
  for (int t = 1; t <= steps; ++t) {
    for (size_t i = 0; i < p.size(); ++i) {
      double g = kGradients[t - 1][i];
      if (o.decoupled) p[i] = p[i] - o.lr * o.weight_decay * p[i];
      else g = g + o.weight_decay * p[i];
      m[i] = o.beta1 * m[i] + (1.0 - o.beta1) * g;
      v[i] = o.beta2 * v[i] + (1.0 - o.beta2) * g * g;
      const double m_hat = m[i] / (1.0 - std::pow(o.beta1, t));
      double v_hat = v[i] / (1.0 - std::pow(o.beta2, t));
      if (o.amsgrad) {
        v_max[i] = std::max(v_max[i], v[i]);
        v_hat = v_max[i] / (1.0 - std::pow(o.beta2, t));
      }
      p[i] = p[i] - o.lr * m_hat / (std::sqrt(v_hat) + o.eps);
    }
  }
  return p;
}

template <typename OptimizerType, typename Options>
std::vector<double> run_dtrain(const Options& options, int steps, bool fused, DType dtype = kFloat64) {
  Tensor param = parameter(kInitialParameter, dtype);
  OptimizerType optimizer({param}, options);
  optimizer.set_fused(fused);
  for (int t = 0; t < steps; ++t) {
    set_gradient(param, kGradients[t]);
    optimizer.step();
  }
  return values_of(param);
}

AdamByHand as_hand(const AdamOptions& o) {
  return {o.lr, o.betas.first, o.betas.second, o.eps, o.weight_decay, false, o.amsgrad};
}
AdamByHand as_hand(const AdamWOptions& o) {
  return {o.lr, o.betas.first, o.betas.second, o.eps, o.weight_decay, true, o.amsgrad};
}

}  // namespace

TEST_CASE("Adam matches PyTorch's formulas for 3 steps", "[optim][adam]") {
  const std::vector<AdamOptions> settings = {
      {},
      {.lr = 0.01, .betas = {0.8, 0.9}, .eps = 1e-3, .weight_decay = 0.1},
      {.lr = 0.01, .betas = {0.9, 0.5}, .amsgrad = true},
      {.lr = 0.01, .betas = {0.9, 0.5}, .weight_decay = 0.05, .amsgrad = true},
  };
  for (const AdamOptions& options : settings) {
    for (bool fused : {true, false}) {
      INFO("lr " << options.lr << " betas " << options.betas.first << "," << options.betas.second << " eps "
                 << options.eps << " weight_decay " << options.weight_decay << " amsgrad " << options.amsgrad
                 << " fused " << fused);
      const std::vector<double> expected = adam_by_hand(as_hand(options), 3);
      check_close(run_dtrain<Adam>(options, 3, fused), expected, 1e-13);
      check_close(run_dtrain<Adam>(options, 3, fused, kFloat32), expected, 2e-6);
    }
  }
}

TEST_CASE("AdamW matches PyTorch's formulas for 3 steps", "[optim][adamw]") {
  const std::vector<AdamWOptions> settings = {
      {},
      {.lr = 0.01, .betas = {0.8, 0.9}, .eps = 1e-3, .weight_decay = 0.1},
      {.lr = 0.01, .betas = {0.9, 0.5}, .weight_decay = 0.0},
      {.lr = 0.01, .betas = {0.9, 0.5}, .weight_decay = 0.2, .amsgrad = true},
  };
  for (const AdamWOptions& options : settings) {
    for (bool fused : {true, false}) {
      INFO("lr " << options.lr << " betas " << options.betas.first << "," << options.betas.second << " eps "
                 << options.eps << " weight_decay " << options.weight_decay << " amsgrad " << options.amsgrad
                 << " fused " << fused);
      const std::vector<double> expected = adam_by_hand(as_hand(options), 3);
      check_close(run_dtrain<AdamW>(options, 3, fused), expected, 1e-13);
      check_close(run_dtrain<AdamW>(options, 3, fused, kFloat32), expected, 2e-6);
    }
  }
}

TEST_CASE("amsgrad changes the result when the second moment shrinks", "[optim][adam]") {
  // With beta2 = 0.5 the second element's v falls from 0.02 to 0.015 at step 2, so the running
  // maximum differs from v: the test above would not notice amsgrad being ignored otherwise.
  const std::vector<double> with = run_dtrain<Adam>(AdamOptions{.lr = 0.01, .betas = {0.9, 0.5}, .amsgrad = true}, 3, true);
  const std::vector<double> without = run_dtrain<Adam>(AdamOptions{.lr = 0.01, .betas = {0.9, 0.5}}, 3, true);
  CHECK(std::abs(with[1] - without[1]) > 1e-4);
}

TEST_CASE("Adam and AdamW differ only in how weight decay is applied", "[optim][adamw]") {
  const std::vector<double> adam = run_dtrain<Adam>(AdamOptions{.lr = 0.01, .weight_decay = 0.0}, 3, true);
  const std::vector<double> adamw = run_dtrain<AdamW>(AdamWOptions{.lr = 0.01, .weight_decay = 0.0}, 3, true);
  check_close(adam, adamw, 0.0);
  const std::vector<double> adam_decay = run_dtrain<Adam>(AdamOptions{.lr = 0.01, .weight_decay = 0.1}, 3, true);
  const std::vector<double> adamw_decay = run_dtrain<AdamW>(AdamWOptions{.lr = 0.01, .weight_decay = 0.1}, 3, true);
  CHECK(std::abs(adam_decay[0] - adamw_decay[0]) > 1e-6);
}

TEST_CASE("Adam and AdamW agree with torch 1.13 on the tiny problem", "[optim][adam][torch]") {
  // Constants printed by torch 1.13 (Debian's python3-torch): torch.optim.Adam / AdamW on
  // p = [1, -2, 0.5] in float64 with the gradients kGradients, one step each.
  check_close(run_dtrain<Adam>(AdamOptions{.lr = 0.01, .betas = {0.8, 0.9}, .eps = 1e-3, .weight_decay = 0.1}, 3, true),
              {0.97660845918205585, -1.9758529770953743, 0.49282833912294544}, 1e-14);
  check_close(run_dtrain<Adam>(AdamOptions{.lr = 0.01, .betas = {0.9, 0.5}, .eps = 1e-8, .amsgrad = true}, 3, true),
              {0.98056698479789139, -1.9900858610113352, 0.49414069905054225}, 1e-14);
  check_close(run_dtrain<AdamW>(AdamWOptions{.lr = 0.01, .betas = {0.8, 0.9}, .eps = 1e-3, .weight_decay = 0.1}, 3, true),
              {0.97707130304434409, -1.9855229444305238, 0.4939427159780963}, 1e-14);
}

TEST_CASE("AdamW's defaults are PyTorch's", "[optim][adamw]") {
  Tensor param = parameter(kInitialParameter);
  AdamW adamw({param});
  const AdamWOptions options = adamw.options();
  CHECK(options.lr == 1e-3);
  CHECK(options.betas.first == 0.9);
  CHECK(options.betas.second == 0.999);
  CHECK(options.eps == 1e-8);
  CHECK(options.weight_decay == 1e-2);
  CHECK_FALSE(options.amsgrad);
  Adam adam({parameter(kInitialParameter)});
  CHECK(adam.options().weight_decay == 0.0);
}

TEST_CASE("Adam keeps exp_avg and exp_avg_sq, and max_exp_avg_sq with amsgrad", "[optim][adam]") {
  Tensor param = parameter(kInitialParameter);
  Adam adam({param}, {.amsgrad = true});
  set_gradient(param, kGradients[0]);
  adam.step();
  const ParameterState& state = adam.state(0);
  CHECK(state.step == 1);
  REQUIRE(state.tensors.size() == 3);
  // After one step m = (1 - beta1) g and v = (1 - beta2) g^2.
  std::vector<double> m, v;
  for (double g : kGradients[0]) {
    m.push_back(0.1 * g);
    v.push_back(0.001 * g * g);
  }
  check_close(values_of(state.tensors.at("exp_avg")), m, 1e-15);
  check_close(values_of(state.tensors.at("exp_avg_sq")), v, 1e-15);
  check_close(values_of(state.tensors.at("max_exp_avg_sq")), v, 1e-15);
}

TEST_CASE("Adam refuses invalid settings, naming them", "[optim][adam]") {
  Tensor param = parameter(kInitialParameter);
  CHECK_THROWS_WITH(Adam({param}, {.betas = {0.9, 1.0}}), Catch::Contains("betas.second") && Catch::Contains("1"));
  CHECK_THROWS_WITH(AdamW({param}, {.betas = {-0.1, 0.9}}), Catch::Contains("betas.first"));
  CHECK_THROWS_WITH(AdamW({param}, {.eps = -1.0}), Catch::Contains("eps >= 0"));
  CHECK_THROWS_WITH(AdamW({param}, {.weight_decay = -0.1}), Catch::Contains("weight_decay >= 0"));
}

TEST_CASE("AdamW updates 16-bit parameters through tensor ops", "[optim][adamw]") {
  // bfloat16 keeps 8 bits of mantissa: the result is the float64 one to within a few parts in 1000.
  const AdamWOptions options{.lr = 0.01, .betas = {0.8, 0.9}, .eps = 1e-3, .weight_decay = 0.1};
  const std::vector<double> expected = adam_by_hand(as_hand(options), 3);
  check_close(run_dtrain<AdamW>(options, 3, true, kBFloat16), expected, 8e-3);
  check_close(run_dtrain<AdamW>(options, 3, true, kFloat16), expected, 1e-3);
}

TEST_CASE("adam_update_many equals adam_update parameter by parameter, bit for bit", "[optim][adamw]") {
  // Parameters at different update numbers (two batches), one strided (the tensor-op path), in
  // float32 and float64 (separate batches), against the single-parameter function on copies.
  const AdamHyperParameters hyper{.lr = 0.02, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6, .weight_decay = 0.1,
                                  .weight_decay_kind = WeightDecayKind::Decoupled};
  struct Case {
    Shape shape;
    DType dtype;
    int64_t step;
    bool strided;
  };
  const std::vector<Case> cases{{{7}, kFloat32, 3, false},
                                {{4, 5}, kFloat32, 3, false},
                                {{6}, kFloat32, 1, false},
                                {{5, 4}, kFloat64, 3, false},
                                {{4, 6}, kFloat32, 3, true}};
  std::vector<AdamUpdateItem> batched, single;
  std::vector<Tensor> initial;
  Generator generator(77);
  auto state_like = [&](const Tensor& param) {
    return AdamState{.exp_avg = mul(rand(param.shape(), {.dtype = param.dtype()}, &generator), 0.1),
                     .exp_avg_sq = mul(rand(param.shape(), {.dtype = param.dtype()}, &generator), 0.01),
                     .max_exp_avg_sq = Tensor()};
  };
  auto copy_of = [](const AdamState& state) {
    return AdamState{.exp_avg = state.exp_avg.clone(), .exp_avg_sq = state.exp_avg_sq.clone(), .max_exp_avg_sq = Tensor()};
  };
  for (const Case& c : cases) {
    Tensor param = randn(c.shape, {.dtype = c.dtype}, &generator);
    Tensor grad = randn(c.shape, {.dtype = c.dtype}, &generator);
    AdamState state = state_like(param);
    if (c.strided) {  // transposed views: not contiguous, so not fusable
      param = param.transpose(0, 1);
      grad = grad.transpose(0, 1);
      state = AdamState{.exp_avg = state.exp_avg.transpose(0, 1), .exp_avg_sq = state.exp_avg_sq.transpose(0, 1),
                        .max_exp_avg_sq = Tensor()};
    }
    initial.push_back(param.clone());
    single.push_back({.param = param.clone(), .grad = grad, .state = copy_of(state), .step = c.step});
    batched.push_back({.param = param, .grad = grad, .state = state, .step = c.step});
  }
  adam_update_many(batched, hyper, /*allow_fused=*/true);
  for (const AdamUpdateItem& item : single) adam_update(item.param, item.grad, item.state, hyper, item.step, true);
  for (size_t i = 0; i < cases.size(); ++i) {
    INFO("parameter " << i);
    REQUIRE(equal(batched[i].param, single[i].param));
    REQUIRE(equal(batched[i].state.exp_avg, single[i].state.exp_avg));
    REQUIRE(equal(batched[i].state.exp_avg_sq, single[i].state.exp_avg_sq));
    REQUIRE_FALSE(equal(batched[i].param, initial[i]));  // the step did move it
  }
}
