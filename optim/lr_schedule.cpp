#include "optim/lr_schedule.h"

#include <cmath>
#include <numbers>

#include "core/error.h"

namespace dtrain::optim {

namespace {
void check_step(int64_t step, const char* schedule) {
  if (step < 0) fail(schedule, ": expected a step >= 0, got ", step);
}
}  // namespace

LrSchedule constant_lr(double lr) {
  if (!(lr >= 0.0)) fail("constant_lr: expected lr >= 0, got ", lr);
  return [lr](int64_t step) {
    check_step(step, "constant_lr");
    return lr;
  };
}

LrSchedule step_lr(double lr, int64_t step_size, double gamma) {
  if (!(lr >= 0.0)) fail("step_lr: expected lr >= 0, got ", lr);
  if (step_size < 1) fail("step_lr: expected step_size >= 1, got ", step_size);
  if (!(gamma > 0.0)) fail("step_lr: expected gamma > 0, got ", gamma);
  return [lr, step_size, gamma](int64_t step) {
    check_step(step, "step_lr");
    return lr * std::pow(gamma, static_cast<double>(step / step_size));
  };
}

LrSchedule warmup_cosine_lr(WarmupCosineOptions options) {
  if (!(options.max_lr >= 0.0)) fail("warmup_cosine_lr: expected max_lr >= 0, got ", options.max_lr);
  if (!(options.min_lr >= 0.0 && options.min_lr <= options.max_lr)) {
    fail("warmup_cosine_lr: expected 0 <= min_lr <= max_lr, got min_lr ", options.min_lr, " and max_lr ", options.max_lr);
  }
  if (options.warmup_steps < 0 || options.total_steps < options.warmup_steps) {
    fail("warmup_cosine_lr: expected 0 <= warmup_steps <= total_steps, got warmup_steps ", options.warmup_steps,
         " and total_steps ", options.total_steps);
  }
  return [options](int64_t step) {
    check_step(step, "warmup_cosine_lr");
    if (step < options.warmup_steps) {
      return options.max_lr * static_cast<double>(step + 1) / static_cast<double>(options.warmup_steps);
    }
    if (step >= options.total_steps) return options.min_lr;
    const double decay_ratio = static_cast<double>(step - options.warmup_steps) /
                               static_cast<double>(options.total_steps - options.warmup_steps);
    const double coefficient = 0.5 * (1.0 + std::cos(std::numbers::pi * decay_ratio));
    return options.min_lr + coefficient * (options.max_lr - options.min_lr);
  };
}

}  // namespace dtrain::optim
