// DynamicLossScaler through a sequence of clean and overflowing iterations, as GradScaler does.
#include <catch2/catch.hpp>

#include <limits>
#include <vector>

#include "optim/loss_scaler.h"
#include "optim/sgd.h"
#include "tests/optim/optim_test_support.h"

using namespace dtrain;
using namespace dtrain::optim;
using namespace dtrain::optim::testing;

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}  // namespace

TEST_CASE("DynamicLossScaler's defaults are GradScaler's", "[optim][scaler]") {
  DynamicLossScaler scaler;
  CHECK(scaler.scale() == 65536.0);
  const LossScalerOptions defaults;
  CHECK(defaults.growth_factor == 2.0);
  CHECK(defaults.backoff_factor == 0.5);
  CHECK(defaults.growth_interval == 2000);
}

TEST_CASE("DynamicLossScaler skips overflowing steps, backs off and grows", "[optim][scaler]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    INFO("gradients in " << dtype);
    Tensor param = parameter({0.0, 0.0}, dtype);
    SGD sgd({param}, {.lr = 1.0});
    DynamicLossScaler scaler({.init_scale = 8.0, .growth_interval = 3});

    // scale_loss multiplies by the scale.
    CHECK(scaler.scale_loss(from_vector(std::vector<float>{1.5})).item() == 12.0);

    // Three clean iterations: the gradient is divided by the scale, the step runs, and the
    // third grows the scale.
    std::vector<double> expected = {0.0, 0.0};
    for (int iteration = 0; iteration < 3; ++iteration) {
      set_gradient(param, {16.0, -8.0});  // as if backward ran on loss * 8
      CHECK(scaler.step(sgd));
      CHECK_FALSE(scaler.found_inf());
      check_close(values_of(param.grad()), {2.0, -1.0}, 0.0);
      expected[0] -= 2.0;
      expected[1] += 1.0;
      check_close(values_of(param), expected, 0.0);
      scaler.update();
      CHECK(scaler.growth_tracker() == (iteration + 1) % 3);
    }
    CHECK(scaler.scale() == 16.0);

    // An inf: no step, the scale halves, the count of clean steps restarts.
    set_gradient(param, {1.0, kInf});
    CHECK_FALSE(scaler.step(sgd));
    CHECK(scaler.found_inf());
    check_close(values_of(param), expected, 0.0);
    scaler.update();
    CHECK(scaler.scale() == 8.0);
    CHECK(scaler.growth_tracker() == 0);

    // A NaN, unscaled by hand before clipping would happen: same outcome.
    set_gradient(param, {kNaN, 1.0});
    scaler.unscale(sgd);
    CHECK(scaler.found_inf());
    CHECK_FALSE(scaler.step(sgd));
    scaler.update();
    CHECK(scaler.scale() == 4.0);

    // One clean step again, then save and restore the scaler.
    set_gradient(param, {4.0, 4.0});
    CHECK(scaler.step(sgd));
    scaler.update();
    CHECK(scaler.growth_tracker() == 1);
    DynamicLossScaler restored({.init_scale = 8.0, .growth_interval = 3});
    restored.load_state_dict(scaler.state_dict());
    CHECK(restored.scale() == 4.0);
    CHECK(restored.growth_tracker() == 1);
  }
}

TEST_CASE("DynamicLossScaler checks strided gradients with tensor ops", "[optim][scaler]") {
  Tensor param = zeros({2, 2});
  param.set_requires_grad();
  Tensor gradient = from_vector(std::vector<float>{4, 8, 12, 16}, {2, 2}).t();
  REQUIRE_FALSE(gradient.is_contiguous());
  param.set_grad(gradient);
  DynamicLossScaler scaler({.init_scale = 4.0});
  scaler.unscale(std::vector<Tensor>{param});
  CHECK_FALSE(scaler.found_inf());
  CHECK(values_of(param.grad()) == std::vector<double>{1, 3, 2, 4});
  scaler.update();

  param.set_grad(from_vector(std::vector<float>{1, 2, std::numeric_limits<float>::infinity(), 4}, {2, 2}).t());
  scaler.unscale(std::vector<Tensor>{param});
  CHECK(scaler.found_inf());
}

TEST_CASE("DynamicLossScaler refuses out-of-order calls and bad state", "[optim][scaler]") {
  Tensor param = parameter({1.0});
  SGD sgd({param}, {.lr = 0.1});
  DynamicLossScaler scaler;
  CHECK_THROWS_WITH(scaler.update(), Catch::Contains("unscale() or step()"));
  set_gradient(param, {1.0});
  scaler.unscale(sgd);
  CHECK_THROWS_WITH(scaler.unscale(sgd), Catch::Contains("already"));
  CHECK_THROWS_WITH(DynamicLossScaler({.backoff_factor = 1.5}), Catch::Contains("backoff_factor"));
  CHECK_THROWS_WITH(DynamicLossScaler({.growth_interval = 0}), Catch::Contains("growth_interval >= 1"));

  StateDict bad = scaler.state_dict();
  bad["scale"] = scalar_tensor(4.0, kFloat32);
  bad["extra"] = zeros({1});
  CHECK_THROWS_WITH(scaler.load_state_dict(bad), Catch::Contains("'scale'") && Catch::Contains("float32") &&
                                                     Catch::Contains("unexpected key 'extra'"));
}

TEST_CASE("a disabled DynamicLossScaler neither scales nor skips", "[optim][scaler]") {
  Tensor param = parameter({1.0});
  SGD sgd({param}, {.lr = 1.0});
  DynamicLossScaler scaler({.enabled = false});
  CHECK(scaler.scale() == 1.0);
  set_gradient(param, {0.5});
  CHECK(scaler.step(sgd));
  scaler.update();
  CHECK(values_of(param)[0] == 0.5);
}

TEST_CASE("DynamicLossScaler unscales float16 gradients", "[optim][scaler]") {
  Tensor param = parameter({0.0, 0.0}, kFloat16);
  DynamicLossScaler scaler;
  set_gradient(param, {65536.0 / 4, 3.0 * 65536.0 / 8});  // a quarter and three eighths, scaled by 2^16
  scaler.unscale(std::vector<Tensor>{param});
  CHECK_FALSE(scaler.found_inf());
  CHECK(values_of(param.grad()) == std::vector<double>{0.25, 0.375});
  scaler.update();
  set_gradient(param, {1.0, kInf});
  scaler.unscale(std::vector<Tensor>{param});
  CHECK(scaler.found_inf());
}
