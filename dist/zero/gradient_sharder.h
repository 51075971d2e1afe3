#pragma once
// GradientSharder: ZeRO-2's (and -3's) gradient path. A post-accumulate-grad hook on every
// parameter copies its gradient into its unit's bucket as soon as backward has produced it and
// drops the parameter's own gradient; once every member of a unit is in, the bucket is
// reduce-scattered asynchronously while backward goes on, and when that completes this rank's
// slot, divided by N (as DDP: sum first, divide once), is added to the unit's gradient shard and
// the bucket is freed. So a rank never holds the whole gradient: only buckets in flight and its
// shard. Buckets launch in one fixed order (every rank issues the same collectives in the same
// order); finish() launches the rest (members that got no gradient contribute zeros) and waits.
//
// Backwards between two optimizer steps accumulate into the shards (gradient accumulation).
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "dist/process_group.h"
#include "dist/zero/sharded_unit.h"

namespace dtrain::dist {

class GradientSharder {
 public:
  // units: launched in the order given by launch_order (indices into units). on_unit_complete
  // runs when every member of a unit got its gradient in this backward (stage 3 frees the
  // gathered parameters there). before_collective runs before each reduce-scatter is issued
  // (stage 3's cross-rank order check in debug mode).
  GradientSharder(ProcessGroup& group, std::vector<ShardedUnit>& units, const std::vector<Tensor>& parameters,
                  std::vector<std::string> names, std::vector<size_t> launch_order, std::function<void(size_t unit)> on_unit_complete,
                  std::function<void(size_t unit)> before_collective);
  ~GradientSharder();
  GradientSharder(const GradientSharder&) = delete;
  GradientSharder& operator=(const GradientSharder&) = delete;

  // Marks a backward as started (so finish() reduces even if no gradient reached this rank).
  void begin_backward();
  // Launches the buckets not yet launched and waits for all; the shards then hold this
  // backward's averaged gradients added to what they held. Does nothing when no backward is
  // pending.
  void finish();
  bool pending() const { return pending_; }
  // After a backward that raised: waits for the buckets in flight and forgets the rest, without
  // issuing collectives (the ranks may no longer agree on what comes next).
  void abandon();

 private:
  void on_gradient(size_t parameter);
  void launch_ready();
  void launch(size_t unit);
  void complete(size_t unit);  // waits for a launched bucket and adds it into the shard
  void reap_completed();

  ProcessGroup& group_;
  std::vector<ShardedUnit>& units_;
  std::vector<Tensor> parameters_;
  std::vector<std::string> names_;
  std::vector<size_t> launch_order_;
  std::function<void(size_t)> on_unit_complete_;
  std::function<void(size_t)> before_collective_;
  struct Location {
    size_t unit;
    size_t member;
  };
  std::vector<Location> location_of_;  // by parameter
  std::vector<size_t> hook_handles_;   // by parameter
  size_t next_launch_ = 0;             // position in launch_order_
  std::vector<size_t> in_flight_;      // units launched and not yet completed
  bool pending_ = false;
};

}  // namespace dtrain::dist
