#include "dist/model_averaging/post_local_sgd.h"

#include <cstddef>
#include <optional>
#include <string>
#include <utility>

#include "core/error.h"
#include "dist/bucket_assignment.h"
#include "dist/init.h"
#include "dist/wait_all.h"

namespace dtrain::dist {
namespace {

const PostLocalSgdOptions& checked(const PostLocalSgdOptions& options) {
  if (options.start_step < 0) fail("PostLocalSgd: expected start_step >= 0, got ", options.start_step);
  if (options.period < 1) {
    fail("PostLocalSgd: expected a period >= 1 (local steps between averages; 1 is DDP), got ", options.period);
  }
  return options;
}

}  // namespace

PostLocalSgd::PostLocalSgd(std::vector<Tensor> parameters, std::shared_ptr<ProcessGroup> group,
                           PostLocalSgdOptions options)
    : group_(group ? std::move(group) : world_ptr()),
      options_(checked(options)),
      buckets_(std::move(parameters), megabytes_to_bytes(options.bucket_cap_mb, "PostLocalSgd", "bucket_cap_mb"),
               "PostLocalSgd") {}

bool PostLocalSgd::synchronizes_gradients(int64_t steps_done) const {
  return options_.period == 1 || steps_done < options_.start_step;
}

bool PostLocalSgd::averages_after(int64_t steps_done) const {
  if (options_.period == 1 || steps_done <= options_.start_step) return false;
  return (steps_done - options_.start_step) % options_.period == 0;
}

bool PostLocalSgd::parameters_synchronized(int64_t steps_done) const {
  return options_.period == 1 || steps_done <= options_.start_step || averages_after(steps_done);
}

void PostLocalSgd::after_step(int64_t steps_done) {
  if (steps_done < 1) fail("PostLocalSgd::after_step: expected the number of steps done (>= 1), got ", steps_done);
  if (!averages_after(steps_done) || group_->size() == 1) return;
  average_parameters();
}

void PostLocalSgd::average_parameters() {
  buckets_.pack();
  issue_all_and_wait(buckets_.bucket_count(), [&](size_t bucket) {
    Tensor buffer = buckets_.buffers()[bucket];
    return group_->all_reduce(buffer, ReduceOp::Average);
  });
  buckets_.unpack();
}

optim::StateDict PostLocalSgd::state_dict() const {
  return {{"start_step", optim::int64_scalar(options_.start_step)}, {"period", optim::int64_scalar(options_.period)}};
}

void PostLocalSgd::load_state_dict(const optim::StateDict& state) {
  optim::StateDictProblems problems;
  std::optional<double> start_step = problems.number(state, "start_step", kInt64);
  std::optional<double> period = problems.number(state, "period", kInt64);
  if (start_step && *start_step != static_cast<double>(options_.start_step)) {
    problems.add(detail::concat("start_step: the state has ", *start_step, ", this PostLocalSgd ", options_.start_step));
  }
  if (period && *period != static_cast<double>(options_.period)) {
    problems.add(detail::concat("period: the state has ", *period, ", this PostLocalSgd ", options_.period));
  }
  problems.raise_if_any("PostLocalSgd.load_state_dict");
}

}  // namespace dtrain::dist
