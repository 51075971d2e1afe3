#pragma once
// Learning-rate schedules as pure functions of the step: schedule(step) is the lr for optimizer
// step number `step` (0 for the first). A schedule holds no state, so resuming a run at step s
// needs nothing but s, and a schedule can be tested or plotted on its own. Apply it before
// each step:
//
//   auto schedule = optim::warmup_cosine_lr({.max_lr = 6e-4, .min_lr = 6e-5,
//                                            .warmup_steps = 100, .total_steps = 5000});
//   for (int64_t step = 0; step < 5000; ++step) {
//     optimizer.set_lr(schedule(step));   // every group; set_lr(g, ...) for one group
//     ...
//     optimizer.step();
//   }
//
// Groups that need different learning rates take one schedule each (set_lr(g, schedule_g(step))).
// Any callable double(int64_t) is a schedule; these are the common ones.
#include <cstdint>
#include <functional>

namespace dtrain::optim {

using LrSchedule = std::function<double(int64_t step)>;

// lr at every step.
LrSchedule constant_lr(double lr);

// lr * gamma^floor(step / step_size), as torch.optim.lr_scheduler.StepLR.
LrSchedule step_lr(double lr, int64_t step_size, double gamma);

struct WarmupCosineOptions {
  double max_lr = 0.0;
  double min_lr = 0.0;
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;  // the cosine reaches min_lr here, and stays there after
};

// Linear warmup, then cosine decay to min_lr, as llm.c's get_lr:
//   step < warmup_steps:        max_lr * (step + 1) / warmup_steps   (never 0, max_lr at the end)
//   step >= total_steps:        min_lr
//   otherwise, with r = (step - warmup_steps) / (total_steps - warmup_steps):
//                               min_lr + 0.5 * (1 + cos(pi * r)) * (max_lr - min_lr)
LrSchedule warmup_cosine_lr(WarmupCosineOptions options);

}  // namespace dtrain::optim
