#include "dist/zero/gradient_sharder.h"

#include <exception>
#include <utility>

#include "core/grad_mode.h"
#include "core/graph.h"
#include "core/ops/factory.h"
#include "dist/wait_all.h"

namespace dtrain::dist {

GradientSharder::GradientSharder(ProcessGroup& group, std::vector<ShardedUnit>& units,
                                 const std::vector<Tensor>& parameters, std::vector<std::string> names,
                                 std::vector<size_t> launch_order,
                                 std::function<void(size_t unit)> on_unit_complete,
                                 std::function<void(size_t unit)> before_collective)
    : group_(group),
      units_(units),
      parameters_(parameters),
      names_(std::move(names)),
      launch_order_(std::move(launch_order)),
      on_unit_complete_(std::move(on_unit_complete)),
      before_collective_(std::move(before_collective)) {
  location_of_.resize(parameters_.size());
  for (size_t u = 0; u < units_.size(); ++u) {
    for (size_t member = 0; member < units_[u].parameters.size(); ++member) {
      location_of_[units_[u].parameters[member]] = {u, member};
    }
    units_[u].arrived.assign(units_[u].parameters.size(), 0);
  }
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
  // A reduce-scatter in flight writes into a bucket: wait before the buckets are freed.
  for (size_t unit : in_flight_) {
    try {
      if (units_[unit].reduce_work) units_[unit].reduce_work->wait();
    } catch (const std::exception&) {
      // The error was the iteration's to report.
    }
  }
}

void GradientSharder::begin_backward() { pending_ = true; }

void GradientSharder::on_gradient(size_t parameter) {
  const Location& location = location_of_[parameter];
  ShardedUnit& unit = units_[location.unit];
  Tensor param = parameters_[parameter];
  Tensor gradient = param.grad();
  if (!gradient.defined()) return;
  for (size_t position = 0; position < next_launch_; ++position) {
    if (launch_order_[position] == location.unit) {
      fail("ZeroOptimizer: parameter '", names_[parameter], "' (", unit.name, ") got a gradient after its bucket was reduce-scattered (a second backward through one forward, or a ",
           "gradient that does not come from the loss given to backward)");
    }
  }
  pending_ = true;
  NoGradGuard no_grad;
  if (!unit.bucket.defined()) {
    MemoryTagScope tag(MemoryTag::Communication);
    unit.bucket = zeros({unit.padded_total()}, {.dtype = unit.compute_dtype, .device = gradient.device()});
  }
  Tensor slot = unit.member_view(unit.bucket, location.member, param.shape());
  if (unit.arrived[location.member]) {
    slot.add_(gradient);
  } else {
    slot.copy_(gradient);
    unit.arrived[location.member] = 1;
    ++unit.arrived_count;
  }
  // The parameter's own gradient is freed now: only the bucket and the shard hold gradients.
  param.autograd_meta().grad = Tensor();
  if (unit.arrived_count == unit.parameters.size()) {
    if (on_unit_complete_) on_unit_complete_(location.unit);
    launch_ready();
  }
  reap_completed();
}

void GradientSharder::launch_ready() {
  while (next_launch_ < launch_order_.size()) {
    const ShardedUnit& unit = units_[launch_order_[next_launch_]];
    if (unit.arrived_count != unit.parameters.size()) break;
    launch(launch_order_[next_launch_++]);
  }
}

void GradientSharder::launch(size_t unit_index) {
  ShardedUnit& unit = units_[unit_index];
  if (!unit.bucket.defined()) {
    MemoryTagScope tag(MemoryTag::Communication);
    unit.bucket = zeros({unit.padded_total()}, {.dtype = unit.compute_dtype, .device = unit.gradient_shard.device()});
  }
  if (before_collective_) before_collective_(unit_index);
  Tensor own_slot = unit.bucket.narrow(0, unit.own_begin(), unit.shard_size());
  unit.reduce_work = group_.reduce_scatter(unit.bucket, own_slot, ReduceOp::Sum);
  in_flight_.push_back(unit_index);
}

void GradientSharder::complete(size_t unit_index) {
  ShardedUnit& unit = units_[unit_index];
  WorkHandle work = std::move(unit.reduce_work);
  unit.reduce_work = nullptr;
  work->wait();
  NoGradGuard no_grad;
  Tensor own_slot = unit.bucket.narrow(0, unit.own_begin(), unit.shard_size());
  if (group_.size() > 1) own_slot.div_(static_cast<double>(group_.size()));
  unit.gradient_shard.add_(own_slot);
  unit.bucket = Tensor();
  unit.arrived.assign(unit.parameters.size(), 0);
  unit.arrived_count = 0;
}

void GradientSharder::reap_completed() {
  // Frees buckets whose reduce-scatter is done, oldest first (they complete in launch order).
  while (!in_flight_.empty() && units_[in_flight_.front()].reduce_work->is_completed()) {
    size_t unit = in_flight_.front();
    in_flight_.erase(in_flight_.begin());
    complete(unit);
  }
}

void GradientSharder::abandon() {
  pending_ = false;
  for (size_t unit : in_flight_) {
    try {
      if (units_[unit].reduce_work) units_[unit].reduce_work->wait();
    } catch (const std::exception&) {
      // The backward's own error is the one to report.
    }
    units_[unit].reduce_work = nullptr;
  }
  in_flight_.clear();
  next_launch_ = 0;
  for (ShardedUnit& unit : units_) {
    unit.bucket = Tensor();
    unit.arrived.assign(unit.parameters.size(), 0);
    unit.arrived_count = 0;
  }
}

void GradientSharder::finish() {
  if (!pending_) return;
  pending_ = false;
  // Members without a gradient in this backward contribute zeros; every rank launches every
  // bucket, in the same order.
  FirstError first_error;
  first_error.run([this] {
    while (next_launch_ < launch_order_.size()) {
      size_t unit = launch_order_[next_launch_++];
      if (units_[unit].arrived_count != units_[unit].parameters.size() && on_unit_complete_) on_unit_complete_(unit);
      launch(unit);
    }
  });
  // Every launched collective is waited for even after an error: none may write into a freed
  // bucket.
  while (!in_flight_.empty()) {
    size_t unit = in_flight_.front();
    in_flight_.erase(in_flight_.begin());
    first_error.run([this, unit] { complete(unit); });
  }
  next_launch_ = 0;
  for (ShardedUnit& unit : units_) {
    unit.bucket = Tensor();
    unit.arrived.assign(unit.parameters.size(), 0);
    unit.arrived_count = 0;
  }
  first_error.rethrow();
}

}  // namespace dtrain::dist
