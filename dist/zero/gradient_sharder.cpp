#include "dist/zero/gradient_sharder.h"

#include <cstdint>
#include <exception>
#include <utility>

#include "core/allocator.h"
#include "core/grad_mode.h"
#include "core/graph.h"
#include "core/ops/factory.h"
#include "dist/wait_all.h"
#include "dist/work.h"

namespace dtrain::dist {

GradientSharder::GradientSharder(ProcessGroup& group, const ShardingStrategy& strategy, std::vector<ShardedUnit>& units,
                                 const std::vector<Tensor>& parameters, std::vector<std::string> names,
                                 std::vector<size_t> launch_order, size_t max_bytes_in_flight,
                                 std::function<void(size_t unit)> on_unit_complete,
                                 std::function<void(size_t unit)> before_collective)
    : group_(group),
      strategy_(strategy),
      units_(units),
      parameters_(parameters),
      names_(std::move(names)),
      launch_order_(std::move(launch_order)),
      on_unit_complete_(std::move(on_unit_complete)),
      before_collective_(std::move(before_collective)) {
  location_of_.resize(parameters_.size());
  position_of_unit_.assign(units_.size(), 0);
  std::vector<size_t> member_counts;
  std::vector<size_t> bucket_bytes;
  for (size_t position = 0; position < launch_order_.size(); ++position) {
    const ShardedUnit& unit = units_.at(launch_order_[position]);
    position_of_unit_[launch_order_[position]] = position;
    member_counts.push_back(unit.parameters.size());
    bucket_bytes.push_back(static_cast<size_t>(unit.padded_total()) * dtype_size(unit.compute_dtype));
  }
  for (size_t u = 0; u < units_.size(); ++u) {
    for (size_t member = 0; member < units_[u].parameters.size(); ++member) {
      location_of_[units_[u].parameters[member]] = {u, member};
    }
    units_[u].arrived.assign(units_[u].parameters.size(), 0);
    units_[u].arrived_count = 0;
  }
  synchronizer_ = std::make_unique<GradientSynchronizer>(
      std::move(member_counts), std::move(bucket_bytes),
      BucketActions{.start = [this](size_t position) { return start(position); },
                    .complete = [this](size_t position) { complete(position); }},
      max_bytes_in_flight);
  for (size_t p = 0; p < parameters_.size(); ++p) {
    hook_handles_.push_back(
        parameters_[p].register_post_accumulate_grad_hook([this, p](const Tensor&) { on_gradient(p); }));
  }
}

GradientSharder::~GradientSharder() {
  for (size_t p = 0; p < parameters_.size(); ++p) {
    try {
      parameters_[p].remove_hook(hook_handles_[p]);
    } catch (const std::exception&) {
      // Already gone.
    }
  }
  // A reduction in flight writes into a bucket or a shard: wait before they are freed.
  synchronizer_.reset();
}

void GradientSharder::begin_backward() {
  pending_ = true;
  if (strategy_.shards_gradients() || strategy_.all_reduces_gradients() || group_.size() == 1) return;
  // Stage 1 accumulating onto an earlier backward's average A: the next reduce-scatter sums
  // every rank's slot, so this rank's slot must carry N*A and the other slots nothing but the
  // new gradients, which backward is about to add in place.
  NoGradGuard no_grad;
  const double n = static_cast<double>(group_.size());
  for (ShardedUnit& unit : units_) {
    if (!unit.holds_reduced_gradient) continue;
    unit.gradient_shard.mul_(n);
    if (unit.own_begin() > 0) unit.full_gradient.narrow(0, 0, unit.own_begin()).zero_();
    const int64_t own_end = unit.own_begin() + unit.shard_size();
    if (own_end < unit.padded_total()) unit.full_gradient.narrow(0, own_end, unit.padded_total() - own_end).zero_();
    unit.holds_reduced_gradient = false;
  }
}

void GradientSharder::forget_reduced_gradients() {
  for (ShardedUnit& unit : units_) unit.holds_reduced_gradient = false;
}

void GradientSharder::on_gradient(size_t parameter) {
  const Location& location = location_of_[parameter];
  ShardedUnit& unit = units_[location.unit];
  if (!parameters_[parameter].grad().defined()) return;
  if (synchronizer_->is_launched(position_of_unit_[location.unit])) {
    fail("ZeroOptimizer: parameter '", names_[parameter], "' (", unit.name,
         ") got a gradient after its bucket was reduce-scattered (a second backward through one forward, or a ",
         "gradient that does not come from the loss given to backward)");
  }
  pending_ = true;
  const bool first_arrival = !unit.arrived[location.member];
  if (strategy_.shards_gradients()) {
    on_sharded_gradient(parameter);
  } else {
    adopt_whole_gradient(parameter);
  }
  if (first_arrival) {
    unit.arrived[location.member] = 1;
    ++unit.arrived_count;
    synchronizer_->mark_ready(position_of_unit_[location.unit]);
    if (unit.arrived_count == unit.parameters.size()) {
      if (on_unit_complete_) on_unit_complete_(location.unit);
      synchronizer_->launch_ready();
    }
  }
  synchronizer_->complete_finished();
}

void GradientSharder::adopt_whole_gradient(size_t parameter) {
  const Location& location = location_of_[parameter];
  ShardedUnit& unit = units_[location.unit];
  Tensor param = parameters_[parameter];
  Tensor view = unit.member_view(unit.full_gradient, location.member, param.shape());
  Tensor gradient = param.grad();
  if (gradient.defined() && gradient.storage() == view.storage() && gradient.storage_offset() == view.storage_offset()) {
    return;  // backward accumulated into the buffer in place
  }
  // A gradient of its own (the model's zero_grad() dropped the view): copied in once.
  NoGradGuard no_grad;
  if (gradient.defined()) view.copy_(gradient);
  else view.zero_();
  param.set_grad(view);
}

void GradientSharder::on_sharded_gradient(size_t parameter) {
  const Location& location = location_of_[parameter];
  ShardedUnit& unit = units_[location.unit];
  Tensor param = parameters_[parameter];
  Tensor gradient = param.grad();
  NoGradGuard no_grad;
  if (!unit.bucket.defined()) {
    synchronizer_->acquire(position_of_unit_[location.unit]);  // waits for room under the cap
    // Not zeroed: each slot is written by its first gradient, and start() zeros the slots that
    // got none and the padding (a pass over the whole bucket saved).
    MemoryTagScope tag(MemoryTag::Communication);
    unit.bucket = empty({unit.padded_total()}, {.dtype = unit.compute_dtype, .device = gradient.device()});
  }
  Tensor slot = unit.member_view(unit.bucket, location.member, param.shape());
  if (unit.arrived[location.member]) slot.add_(gradient);
  else slot.copy_(gradient);
  // The parameter's own gradient is freed now: only the bucket and the shard hold gradients.
  param.autograd_meta().grad = Tensor();
}

WorkHandle GradientSharder::start(size_t position) {
  const size_t unit_index = launch_order_[position];
  ShardedUnit& unit = units_[unit_index];
  // finish() launches units some of whose members got no gradient in this backward.
  if (unit.arrived_count != unit.parameters.size() && on_unit_complete_) on_unit_complete_(unit_index);
  NoGradGuard no_grad;
  if (!strategy_.shards_gradients()) {
    for (size_t member = 0; member < unit.parameters.size(); ++member) {
      if (!unit.arrived[member]) adopt_whole_gradient(unit.parameters[member]);
    }
    if (group_.size() == 1) return completed_work();
    if (before_collective_) before_collective_(unit_index);
    if (strategy_.all_reduces_gradients()) return group_.all_reduce(unit.full_gradient, ReduceOp::Sum);
    return group_.reduce_scatter(unit.full_gradient, unit.gradient_shard, ReduceOp::Sum);  // in place
  }
  if (!unit.bucket.defined()) {  // no member got a gradient: it contributes zeros
    MemoryTagScope tag(MemoryTag::Communication);
    unit.bucket = zeros({unit.padded_total()}, {.dtype = unit.compute_dtype, .device = unit.gradient_shard.device()});
  } else {
    for (size_t member = 0; member < unit.parameters.size(); ++member) {
      if (!unit.arrived[member]) unit.bucket.narrow(0, unit.layout.offset(member), unit.layout.numel(member)).zero_();
    }
    if (unit.layout.padding() > 0) unit.bucket.narrow(0, unit.layout.total(), unit.layout.padding()).zero_();
  }
  if (before_collective_) before_collective_(unit_index);
  Tensor own_slot = unit.bucket.narrow(0, unit.own_begin(), unit.shard_size());
  // The reduction overwrites the shard: an average A an earlier backward left there rides along
  // as N*A in this rank's slot, so the sum divided by N adds this backward's average to it.
  if (unit.holds_reduced_gradient) {
    own_slot.add_(unit.gradient_shard, static_cast<double>(group_.size()));
  }
  if (group_.size() == 1) {
    unit.gradient_shard.copy_(own_slot);
    return completed_work();
  }
  return group_.reduce_scatter(unit.bucket, unit.gradient_shard, ReduceOp::Sum);
}

void GradientSharder::complete(size_t position) {
  ShardedUnit& unit = units_[launch_order_[position]];
  NoGradGuard no_grad;
  // As DDP: the sum first, divided by N once.
  if (group_.size() > 1) {
    if (strategy_.all_reduces_gradients()) unit.full_gradient.div_(static_cast<double>(group_.size()));
    else unit.gradient_shard.div_(static_cast<double>(group_.size()));
  }
  unit.holds_reduced_gradient = true;
  unit.bucket = Tensor();
}

void GradientSharder::reset_arrivals() {
  for (ShardedUnit& unit : units_) {
    unit.bucket = Tensor();
    unit.arrived.assign(unit.parameters.size(), 0);
    unit.arrived_count = 0;
  }
  synchronizer_->begin();
}

void GradientSharder::abandon() {
  pending_ = false;
  synchronizer_->abandon();
  reset_arrivals();
}

void GradientSharder::finish() {
  if (!pending_) return;
  pending_ = false;
  // Members without a gradient in this backward contribute zeros (or what they accumulated);
  // every rank launches every unit, in the same order, and every launched collective is waited
  // for even after an error: none may write into a freed bucket.
  FirstError first_error;
  first_error.run([this] { synchronizer_->finish(); });
  reset_arrivals();
  first_error.rethrow();
}

}  // namespace dtrain::dist
