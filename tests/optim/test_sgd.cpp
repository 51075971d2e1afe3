// SGD against PyTorch's documented algorithm (torch.optim.SGD), written out with plain doubles.
#include <catch2/catch.hpp>

#include <cstddef>
#include <vector>

#include "optim/sgd.h"
#include "tests/optim/optim_test_support.h"

using namespace dtrain;
using namespace dtrain::optim;
using namespace dtrain::optim::testing;

namespace {

// PyTorch's SGD pseudo-code, one element at a time:
//   g = g + wd * p;  b = (t == 1) ? g : mu * b + (1 - tau) * g;  g = nesterov ? g + mu * b : b;
//   p = p - lr * g
std::vector<double> sgd_by_hand(const SGDOptions& o, int steps) {
  std::vector<double> p = kInitialParameter;
  std::vector<double> b(p.size(), 0.0);
  for (int t = 1; t <= steps; ++t) {
    for (size_t i = 0; i < p.size(); ++i) {
      double g = kGradients[t - 1][i] + o.weight_decay * p[i];
      if (o.momentum != 0.0) {
        b[i] = t == 1 ? g : o.momentum * b[i] + (1.0 - o.dampening) * g;
        g = o.nesterov ? g + o.momentum * b[i] : b[i];
      }
      p[i] = p[i] - o.lr * g;
    }
  }
  return p;
}

std::vector<double> sgd_by_dtrain(const SGDOptions& options, int steps, bool fused, DType dtype = kFloat64) {
  Tensor param = parameter(kInitialParameter, dtype);
  SGD sgd({param}, options);
  sgd.set_fused(fused);
  for (int t = 0; t < steps; ++t) {
    set_gradient(param, kGradients[t]);
    sgd.step();
  }
  return values_of(param);
}

}  // namespace

TEST_CASE("SGD matches PyTorch's formulas for 3 steps", "[optim][sgd]") {
  const std::vector<SGDOptions> settings = {
      {.lr = 0.1},
      {.lr = 0.1, .weight_decay = 0.01},
      {.lr = 0.1, .momentum = 0.9},
      {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01},
      {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true},
  };
  for (const SGDOptions& options : settings) {
    for (bool fused : {true, false}) {
      INFO("lr " << options.lr << " momentum " << options.momentum << " dampening " << options.dampening
                 << " weight_decay " << options.weight_decay << " nesterov " << options.nesterov << " fused " << fused);
      const std::vector<double> expected = sgd_by_hand(options, 3);
      check_close(sgd_by_dtrain(options, 3, fused), expected, 1e-14);
      check_close(sgd_by_dtrain(options, 3, fused, kFloat32), expected, 2e-6);
    }
  }
}

TEST_CASE("SGD's first momentum step takes the gradient undampened", "[optim][sgd]") {
  // With dampening 0.5 a dampened first step would move half as far.
  const SGDOptions options{.lr = 1.0, .momentum = 0.9, .dampening = 0.5};
  const std::vector<double> after_one = sgd_by_dtrain(options, 1, true);
  check_close(after_one, {1.0 - 0.1, -2.0 + 0.2, 0.5 - 0.3}, 1e-15);
}

TEST_CASE("SGD agrees with torch 1.13 on the tiny problem", "[optim][sgd][torch]") {
  // Constants printed by torch 1.13 (Debian's python3-torch): torch.optim.SGD on p = [1, -2, 0.5]
  // in float64 with the gradients kGradients, one step each.
  check_close(sgd_by_dtrain({.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01}, 3, true),
              {0.9262508210899999, -1.97032874218, 0.49710419029499997}, 1e-14);
  check_close(sgd_by_dtrain({.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true}, 3, true),
              {0.90642221255099997, -1.980419525102, 0.51894068480050004}, 1e-14);
}

TEST_CASE("SGD keeps a momentum buffer only with momentum", "[optim][sgd]") {
  Tensor param = parameter(kInitialParameter);
  SGD plain({param}, {.lr = 0.1});
  set_gradient(param, kGradients[0]);
  plain.step();
  CHECK(plain.state(0).step == 1);
  CHECK(plain.state(0).tensors.empty());

  SGD with_momentum({param}, {.lr = 0.1, .momentum = 0.9});
  with_momentum.step();
  REQUIRE(with_momentum.state(0).tensors.count("momentum_buffer") == 1);
  check_close(values_of(with_momentum.state(0).tensors.at("momentum_buffer")), kGradients[0], 0.0);
}

TEST_CASE("SGD refuses invalid settings, naming them", "[optim][sgd]") {
  Tensor param = parameter(kInitialParameter);
  CHECK_THROWS_WITH(SGD({param}, {.lr = 0.1, .nesterov = true}), Catch::Contains("nesterov") && Catch::Contains("momentum"));
  CHECK_THROWS_WITH(SGD({param}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}),
                    Catch::Contains("dampening"));
  CHECK_THROWS_WITH(SGD({param}, {.lr = -1.0}), Catch::Contains("lr >= 0") && Catch::Contains("-1"));
  CHECK_THROWS_WITH(SGD({param}, {.momentum = -0.5}), Catch::Contains("momentum >= 0"));
}
