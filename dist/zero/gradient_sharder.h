#pragma once
// GradientSharder: ZeroOptimizer's gradient path at every stage, on the shared engine
// (dist/gradient_synchronizer.h). A post-accumulate-grad hook on every parameter marks it ready;
// once every member of a unit is in, the unit's gradients are reduced asynchronously while
// backward goes on, in one fixed unit order on every rank. How, the sharding strategy says:
//
//   whole gradients (stages 0-1): backward accumulates straight into the unit's full_gradient
//     (the parameters' .grad() are views of it), which is all-reduced in place (stage 0) or
//     reduce-scattered in place into this rank's slot of it (stage 1) — no copy.
//   sharded gradients (stages 2-3): each gradient is copied into the unit's bucket as soon as
//     backward has produced it and the parameter's own gradient is dropped; the bucket is
//     reduce-scattered straight into the unit's gradient shard and freed. A rank never holds the
//     whole gradient: only buckets in flight (bounded by max_bytes_in_flight) and its shard.
//
// Every reduction sums, and the shard is divided by N once (as DDP). Backwards between two
// optimizer steps accumulate (gradient accumulation): an average an earlier backward left is
// folded into the next reduction (see begin_backward and the bucket's launch).
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "dist/gradient_synchronizer.h"
#include "dist/process_group.h"
#include "dist/zero/sharded_unit.h"
#include "dist/zero/sharding_strategy.h"

namespace dtrain::dist {

class GradientSharder {
 public:
  // units: launched in the order given by launch_order (indices into units). on_unit_complete
  // runs when every member of a unit got its gradient in this backward (stage 3 frees the
  // gathered parameters there). before_collective runs before each reduction is issued
  // (stage 3's cross-rank order check in debug mode). max_bytes_in_flight: the cap on bucket
  // bytes being reduced at once (0: none).
  GradientSharder(ProcessGroup& group, const ShardingStrategy& strategy, std::vector<ShardedUnit>& units,
                  const std::vector<Tensor>& parameters, std::vector<std::string> names,
                  std::vector<size_t> launch_order, size_t max_bytes_in_flight,
                  std::function<void(size_t unit)> on_unit_complete, std::function<void(size_t unit)> before_collective);
  ~GradientSharder();
  GradientSharder(const GradientSharder&) = delete;
  GradientSharder& operator=(const GradientSharder&) = delete;

  // Marks a backward as started (so finish() reduces even if no gradient reached this rank) and
  // prepares the whole-gradient buffers of an accumulating backward.
  void begin_backward();
  // Launches the buckets not yet launched and waits for all; the shards then hold this
  // backward's averaged gradients added to what they held. Does nothing when no backward is
  // pending.
  void finish();
  bool pending() const { return pending_; }
  // After a backward that raised: waits for the buckets in flight and forgets the rest, without
  // issuing collectives (the ranks may no longer agree on what comes next).
  void abandon();
  // The gradients were zeroed: the next backward starts from nothing.
  void forget_reduced_gradients();

  const GradientSynchronizer& synchronizer() const { return *synchronizer_; }
  GradientSynchronizer& synchronizer() { return *synchronizer_; }

 private:
  void on_gradient(size_t parameter);
  void on_whole_gradient(size_t parameter);   // stages 0-1
  void on_sharded_gradient(size_t parameter); // stages 2-3
  WorkHandle start(size_t position);           // position in launch_order_
  void complete(size_t position);
  void reset_arrivals();
  // Makes parameter's .grad() its view of the unit's full gradient (copying a gradient that
  // lives elsewhere in, or zeroing the view when it has none).
  void adopt_whole_gradient(size_t parameter);

  ProcessGroup& group_;
  ShardingStrategy strategy_;
  std::vector<ShardedUnit>& units_;
  std::vector<Tensor> parameters_;
  std::vector<std::string> names_;
  std::vector<size_t> launch_order_;
  std::vector<size_t> position_of_unit_;
  std::function<void(size_t)> on_unit_complete_;
  std::function<void(size_t)> before_collective_;
  struct Location {
    size_t unit;
    size_t member;
  };
  std::vector<Location> location_of_;  // by parameter
  std::vector<size_t> hook_handles_;   // by parameter
  std::unique_ptr<GradientSynchronizer> synchronizer_;
  bool pending_ = false;
};

}  // namespace dtrain::dist
