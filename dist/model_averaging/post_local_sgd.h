#pragma once
// PostLocalSgd: post-local SGD (Lin et al., 2020, "Don't use large mini-batches, use local SGD"),
// as PyTorch's PostLocalSGDOptimizer with its PeriodicModelAverager. The first start_step steps
// are ordinary synchronous data parallelism (DDP all-reduces the gradients in backward); after
// them every rank steps alone on its own data, and every `period` local steps the ranks average
// their parameters. Communication falls from one all-reduce of the gradients per step to one of
// the parameters per period.
//
//   dist::DistributedDataParallel ddp(model);
//   dist::PostLocalSgd local_sgd(model->parameters(), nullptr, {.start_step = 100, .period = 8});
//   for (int64_t step = 0; ; ++step) {
//     optimizer.zero_grad();
//     std::optional<dist::NoSyncGuard> local;
//     if (!local_sgd.synchronizes_gradients(step)) local.emplace(ddp);  // backward stays local
//     cross_entropy(ddp(inputs), targets).backward();
//     local.reset();
//     optimizer.step();
//     local_sgd.after_step(step + 1);   // averages the parameters when a period ended
//   }
//
// Period 1 is synchronous training by definition: synchronizes_gradients() is then true at every
// step and after_step() averages nothing (DDP's ranks take identical steps from identical
// parameters, so the parameters are already equal). That is what makes local SGD with H = 1
// equal DDP bitwise, with any optimizer — averaging the parameters after each local step instead
// would equal DDP only for plain SGD and only up to rounding.
//
// Between averages the ranks' parameters differ (parameters_synchronized() says when they are
// equal): a checkpoint saved by one rank mid-period holds that rank's parameters only.
#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "dist/model_averaging/parameter_buckets.h"
#include "dist/process_group.h"
#include "optim/state_dict.h"

namespace dtrain::dist {

struct PostLocalSgdOptions {
  // Steps 0 .. start_step - 1 synchronise gradients (DDP).
  int64_t start_step = 0;
  // Local steps between parameter averages (H); 1 is synchronous training.
  int64_t period = 8;
  // Parameters are averaged in flat buckets of about this many MiB (one all-reduce each).
  double bucket_cap_mb = 25.0;
};

class PostLocalSgd {
 public:
  // parameters: the model's, the same shapes in the same order on every rank. group: the ranks
  // that average (the world when null). Raises on start_step < 0 or period < 1.
  PostLocalSgd(std::vector<Tensor> parameters, std::shared_ptr<ProcessGroup> group, PostLocalSgdOptions options = {});

  const PostLocalSgdOptions& options() const { return options_; }

  // Whether the step about to run (steps_done steps came before it) all-reduces gradients (DDP).
  // True before start_step, and always when period == 1.
  bool synchronizes_gradients(int64_t steps_done) const;
  // Whether after_step(steps_done) averages: a period of local steps has just ended.
  bool averages_after(int64_t steps_done) const;
  // Whether every rank holds the same parameters after steps_done steps (a synchronous step or
  // an average came last).
  bool parameters_synchronized(int64_t steps_done) const;

  // After the optimizer step that made steps_done steps (so steps_done >= 1): averages the
  // parameters across the group when a period of local steps ended — one all-reduce per flat
  // bucket, all in flight together. Collective when it averages: every rank calls it with the
  // same steps_done.
  void after_step(int64_t steps_done);

  // The schedule is all the state there is: the step count belongs to the training loop, which
  // passes it in. state_dict() records start_step and period; load_state_dict() raises, naming
  // both, when they differ from this object's (a resumed run continues bitwise only on the same
  // schedule).
  optim::StateDict state_dict() const;
  void load_state_dict(const optim::StateDict& state);

 private:
  void average_parameters();

  std::shared_ptr<ProcessGroup> group_;
  PostLocalSgdOptions options_;
  ParameterBuckets buckets_;
};

}  // namespace dtrain::dist
