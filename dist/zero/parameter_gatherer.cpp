#include "dist/zero/parameter_gatherer.h"

#include <algorithm>
#include <exception>
#include <sstream>

#include "core/ops/factory.h"
#include "dist/collective_checker.h"
#include "dist/cuda_communication.h"
#include "dist/wait_all.h"

namespace dtrain::dist {
namespace {

const char* phase_name(int64_t phase) {
  switch (phase) {
    case 0: return "forward";
    case 1: return "backward";
    default: return "outside forward and backward";
  }
}

}  // namespace

ParameterGatherer::ParameterGatherer(ProcessGroup& group, std::vector<ShardedUnit>& units,
                                     std::vector<std::pair<Module*, std::vector<size_t>>> module_units,
                                     size_t prefetch_bytes)
    : group_(group), units_(units), module_units_(std::move(module_units)), prefetch_bytes_(prefetch_bytes) {
  runs_.assign(2 * units_.size(), 0);
  for (auto& [module, needed] : module_units_) {
    if (needed.empty()) continue;
    std::vector<size_t> unit_list = needed;
    hooks_.push_back(module->register_forward_pre_hook([this, unit_list](Module&, const Tensor&) {
      for (size_t unit : unit_list) need(unit);
    }));
    hooks_.push_back(module->register_forward_hook([this, unit_list](Module&, const Tensor&, const Tensor& output) {
      // Test only (DTRAIN_TEST_INJECT_DELAYS_US): the module's kernels still run when its
      // parameters are freed and the next gathers reuse their memory.
      inject_delay_after_forward(output);
      for (size_t unit : unit_list) release(unit);
    }));
    hooks_.push_back(module->register_backward_pre_hook([this, unit_list](Module&, const Tensor&) {
      for (size_t unit : unit_list) need(unit);
    }));
  }
}

ParameterGatherer::~ParameterGatherer() {
  for (HookHandle& hook : hooks_) hook.remove();
  for (ShardedUnit& unit : units_) {
    try {
      unit.wait_gather();
    } catch (const std::exception&) {
      // The error was the iteration's to report.
    }
  }
}

void ParameterGatherer::begin_forward() {
  release_all();
  phase_ = Forward;
  cursor_ = 0;
  follows_trace_ = !recording_;
  collectives_ = 0;
  runs_.assign(2 * units_.size(), 0);
}

void ParameterGatherer::end_forward() {
  release_all();
  phase_ = Idle;
}

void ParameterGatherer::begin_backward() {
  phase_ = Backward;
  cursor_ = 0;
  follows_trace_ = !recording_;
}

void ParameterGatherer::end_backward() {
  release_all();
  if (phase_ == Backward) recording_ = false;
  phase_ = Idle;
}

void ParameterGatherer::release(size_t unit) {
  if (units_[unit].persistent) return;
  units_[unit].release();
}

void ParameterGatherer::release_all() {
  FirstError first_error;
  for (size_t unit = 0; unit < units_.size(); ++unit) first_error.run([this, unit] { release(unit); });
  first_error.rethrow();
}

void ParameterGatherer::need(size_t unit) {
  if (phase_ != Idle) {
    ++runs_[static_cast<size_t>(phase_) * units_.size() + unit];
    std::vector<size_t>& trace = trace_[phase_];
    if (recording_) {
      if (std::find(trace.begin(), trace.end(), unit) == trace.end()) trace.push_back(unit);
    } else if (follows_trace_) {
      auto found = std::find(trace.begin() + static_cast<std::ptrdiff_t>(std::min(cursor_, trace.size())), trace.end(), unit);
      if (found != trace.end()) {
        cursor_ = static_cast<size_t>(found - trace.begin()) + 1;
      } else if (std::find(trace.begin(), trace.end(), unit) == trace.end()) {
        // A unit the first iteration did not need: the recorded order no longer predicts this
        // iteration, so gather on demand only (the same decision on every rank that runs the
        // same modules).
        follows_trace_ = false;
      }
    }
  }
  ShardedUnit& target = units_[unit];
  if (!target.is_gathered()) start_gather(unit);
  target.wait_gather();
  if (phase_ != Idle && follows_trace_) prefetch();
}

void ParameterGatherer::start_gather(size_t unit) {
  check_same_collective(unit, Action::Gather);
  units_[unit].start_gather(group_);
}

void ParameterGatherer::prefetch() {
  const std::vector<size_t>& trace = trace_[phase_];
  size_t bytes = 0;
  for (size_t position = cursor_; position < trace.size(); ++position) {
    ShardedUnit& unit = units_[trace[position]];
    bytes += static_cast<size_t>(unit.padded_total()) * dtype_size(unit.compute_dtype);
    if (bytes > prefetch_bytes_) break;
    if (!unit.is_gathered()) start_gather(trace[position]);
  }
}

void ParameterGatherer::check_same_modules_ran() {
  if (group_.size() == 1) return;
  const int64_t count = static_cast<int64_t>(runs_.size());
  Tensor all = empty({count * group_.size()}, {.dtype = kInt64});
  group_.all_gather(from_vector(runs_), all)->wait();
  const std::vector<int64_t> values = all.to_vector<int64_t>();
  for (int rank = 1; rank < group_.size(); ++rank) {
    for (int64_t i = 0; i < count; ++i) {
      const int64_t mine = values[static_cast<size_t>(i)];
      const int64_t other = values[static_cast<size_t>(rank * count + i)];
      if (mine == other) continue;
      const size_t unit = static_cast<size_t>(i) % units_.size();
      const char* phase = static_cast<size_t>(i) < units_.size() ? "forward" : "backward";
      fail("ZeroOptimizer stage 3: the ranks' modules ran differently in this iteration: the ", phase, " of ",
           units_[unit].name, " needed its parameters ", mine, " time(s) on rank ", group_.ranks()[0], " but ", other,
           " time(s) on rank ", group_.ranks()[rank], ". Every rank must run the same modules the same number of ",
           "times in each iteration (a module whose forward runs a different number of times on some rank, or that a ",
           "rank skips, cannot be sharded at stage 3)");
    }
  }
}

void ParameterGatherer::check_same_collective(size_t unit, Action action) {
  const int64_t sequence = collectives_++;
  if (!collective_checks_enabled() || group_.size() == 1) return;
  const int64_t fields = 4;
  std::vector<int64_t> mine{static_cast<int64_t>(unit), static_cast<int64_t>(action), phase_, sequence};
  Tensor input = from_vector(mine);
  Tensor all = empty({fields * group_.size()}, {.dtype = kInt64});
  group_.all_gather(input, all)->wait();
  const std::vector<int64_t> values = all.to_vector<int64_t>();
  auto describe = [this](const int64_t* call) {
    std::ostringstream text;
    const size_t index = static_cast<size_t>(call[0]);
    text << (call[1] == 0 ? "gather the parameters of " : "reduce-scatter the gradients of ")
         << (index < units_.size() ? units_[index].name : std::string("an unknown unit")) << " (in "
         << phase_name(call[2]) << ", collective #" << call[3] << " of the iteration)";
    return text.str();
  };
  for (int rank = 1; rank < group_.size(); ++rank) {
    const int64_t* first = values.data();
    const int64_t* other = values.data() + rank * fields;
    if (std::equal(first, first + 3, other)) continue;
    fail("ZeroOptimizer stage 3: the ranks' modules ran differently: rank ", group_.ranks()[0], " is about to ",
         describe(first), " but rank ", group_.ranks()[rank], " is about to ", describe(other),
         ". Every rank must run the same modules the same number of times, in the same order, in each iteration ",
         "(a module whose forward runs a different number of times on some rank, or that a rank skips, cannot be ",
         "sharded at stage 3)");
  }
}

}  // namespace dtrain::dist
