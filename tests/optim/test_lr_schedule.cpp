// Learning-rate schedules at chosen steps against values worked out by hand.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <numbers>

#include "optim/lr_schedule.h"
#include "optim/sgd.h"
#include "tests/optim/optim_test_support.h"

using namespace dtrain;
using namespace dtrain::optim;

TEST_CASE("constant_lr is the same at every step", "[optim][schedule]") {
  const LrSchedule schedule = constant_lr(3e-4);
  CHECK(schedule(0) == 3e-4);
  CHECK(schedule(123456) == 3e-4);
}

TEST_CASE("step_lr multiplies by gamma every step_size steps", "[optim][schedule]") {
  const LrSchedule schedule = step_lr(0.1, 3, 0.5);
  CHECK(schedule(0) == Approx(0.1).epsilon(1e-15));
  CHECK(schedule(2) == Approx(0.1).epsilon(1e-15));
  CHECK(schedule(3) == Approx(0.05).epsilon(1e-15));
  CHECK(schedule(5) == Approx(0.05).epsilon(1e-15));
  CHECK(schedule(6) == Approx(0.025).epsilon(1e-15));
  CHECK(schedule(9) == Approx(0.0125).epsilon(1e-15));
}

TEST_CASE("warmup_cosine_lr warms up linearly, then follows a cosine to min_lr", "[optim][schedule]") {
  const LrSchedule schedule = warmup_cosine_lr({.max_lr = 6e-4, .min_lr = 6e-5, .warmup_steps = 10, .total_steps = 100});
  // Warmup: max_lr * (step + 1) / warmup_steps.
  CHECK(schedule(0) == Approx(6e-5).epsilon(1e-12));
  CHECK(schedule(4) == Approx(3e-4).epsilon(1e-12));
  CHECK(schedule(9) == Approx(6e-4).epsilon(1e-12));
  // Decay starts at max_lr (cos 0 = 1) ...
  CHECK(schedule(10) == Approx(6e-4).epsilon(1e-12));
  // ... is halfway at the middle of the decay (cos(pi/2) = 0): min + (max - min) / 2 ...
  CHECK(schedule(55) == Approx(3.3e-4).epsilon(1e-12));
  // ... at step 40, r = 30/90 = 1/3 and cos(pi/3) = 1/2: min + 0.75 (max - min) = 4.65e-4 ...
  CHECK(schedule(40) == Approx(4.65e-4).epsilon(1e-12));
  // ... and at r = 2/3, cos(2pi/3) = -1/2: min + 0.25 (max - min) = 1.95e-4.
  CHECK(schedule(70) == Approx(1.95e-4).epsilon(1e-12));
  // min_lr from total_steps on.
  CHECK(schedule(100) == Approx(6e-5).epsilon(1e-12));
  CHECK(schedule(5000) == 6e-5);
}

TEST_CASE("warmup_cosine_lr without warmup starts at max_lr", "[optim][schedule]") {
  const LrSchedule schedule = warmup_cosine_lr({.max_lr = 1.0, .min_lr = 0.0, .warmup_steps = 0, .total_steps = 4});
  CHECK(schedule(0) == Approx(1.0));
  CHECK(schedule(2) == Approx(0.5));
  CHECK(schedule(4) == 0.0);
}

TEST_CASE("a schedule drives an optimizer through set_lr", "[optim][schedule]") {
  Tensor param = testing::parameter({1.0});
  SGD sgd({{.params = {param}, .options = {.lr = 1.0}}, {.params = {testing::parameter({2.0})}, .options = {.lr = 1.0}}});
  const LrSchedule schedule = step_lr(0.1, 2, 0.1);
  for (int64_t step = 0; step < 4; ++step) {
    sgd.set_lr(schedule(step));
    testing::set_gradient(param, {1.0});
    sgd.step();
  }
  // lr 0.1, 0.1, 0.01, 0.01 on a gradient of 1.
  CHECK(testing::values_of(param)[0] == Approx(1.0 - 0.22).epsilon(1e-14));
  CHECK(sgd.lr(1) == Approx(0.01).epsilon(1e-14));
}

TEST_CASE("schedules refuse invalid settings, naming them", "[optim][schedule]") {
  CHECK_THROWS_WITH(step_lr(0.1, 0, 0.5), Catch::Contains("step_size >= 1"));
  CHECK_THROWS_WITH(warmup_cosine_lr({.max_lr = 1.0, .min_lr = 2.0, .total_steps = 10}), Catch::Contains("min_lr"));
  CHECK_THROWS_WITH(warmup_cosine_lr({.max_lr = 1.0, .warmup_steps = 20, .total_steps = 10}),
                    Catch::Contains("warmup_steps <= total_steps"));
  CHECK_THROWS_WITH(constant_lr(0.1)(-1), Catch::Contains("step >= 0"));
}
