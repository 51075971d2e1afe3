#pragma once
// ZeroOptimizer: ZeRO (Rajbhandari et al.) data parallelism with sharded model state, stages 0-3,
// as one object that owns the model's forward, backward and optimizer step.
//
//   dist::init(&argc, &argv);
//   auto model = std::make_shared<GPT>(config);
//   dist::ZeroOptimizer zero(model, dist::zero_optimizer<optim::AdamW>(optim::AdamWOptions{.lr = 3e-4}),
//                            {.stage = 2, .compute_dtype = kBFloat16});
//   for (...) {
//     zero.zero_grad();
//     zero.backward(cross_entropy(zero(inputs), targets));  // reduce-scatters during backward
//     zero.clip_grad_norm(1.0);                             // global norm over every shard
//     zero.step();                                          // false: fp16 overflow, skipped on all ranks
//   }
//   std::printf("%s\n", zero.memory_report().str().c_str());
//
// The trainable parameters are cut into units, each one flat buffer split into N equal shards
// (padded; dist/zero/sharded_unit.h): buckets of bucket_cap_mb at stages 0-2, one unit per module
// at stage 3. Rank r owns shard r of every unit: its optimizer (built by the factory over 1-D
// pieces of the master shard, one piece per parameter it crosses, so SGD, Adam and AdamW work
// unchanged and parameter groups keep their hyper-parameters) updates only that shard.
// What each stage shards is a ShardingStrategy (dist/zero/sharding_strategy.h), chosen once;
// gradients are reduced bucket by bucket during backward at every stage, by the engine DDP uses
// too (dist/zero/gradient_sharder.h on dist/gradient_synchronizer.h):
//   stage 0  gradients all-reduced in place, every rank updates everything (the DP baseline)
//   stage 1  gradients reduce-scattered in place into this rank's slot of the gradient buffer;
//            the updated shards are all-gathered (async, bucket by bucket; the next forward waits)
//   stage 2  gradients reduce-scattered from transient buckets into a gradient shard (bucket
//            bytes in flight capped by reduce_in_flight_cap_mb)
//   stage 3  parameters too: gathered module by module just before forward and backward (with
//            prefetch), freed after use (dist/zero/parameter_gatherer.h)
// Gradients are averaged as DDP does (summed across ranks, divided by N once), so ZeRO matches
// DDP on the same data up to rounding. Backwards between two steps accumulate (gradient
// accumulation). Every rank must call every method in the same order (they are collective);
// only memory_report() and lr() are local.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dist/process_group.h"
#include "dist/tensor_fragment.h"
#include "dist/zero/gradient_sharder.h"
#include "dist/zero/memory_report.h"
#include "dist/zero/parameter_gatherer.h"
#include "dist/zero/sharded_loss_scaler.h"
#include "dist/zero/sharded_unit.h"
#include "dist/zero/sharding_strategy.h"
#include "dist/zero/zero_options.h"
#include "layers/deferred_init.h"
#include "layers/module.h"
#include "layers/state_dict.h"
#include "optim/optimizer.h"

namespace dtrain::dist {

class ZeroOptimizer {
 public:
  // Checks that every rank has the same model (names, shapes, dtypes), copies rank 0's values to
  // every rank, shards them and builds the shard's optimizer with factory. The model's parameter
  // tensors become views of ZeRO's flat buffers (at stage 3, released between uses: read them
  // through full_parameters()).
  ZeroOptimizer(std::shared_ptr<Module> model, OptimizerFactory factory, ZeroOptions options = {});
  // Sharded construction (dist/zero/sharded_construction.h): the same over a model built under a
  // DeferredInit (layers/deferred_init.h), whose parameters hold no bytes yet. Each unit's values
  // are drawn straight into its flat buffer, and at stage 3 freed to this rank's shard before the
  // next unit's, so no rank ever holds the whole model. Every rank draws them itself (the ranks
  // are checked to have recorded the same draws) instead of receiving rank 0's.
  ZeroOptimizer(std::shared_ptr<Module> model, std::shared_ptr<const DeferredParameters> deferred,
                OptimizerFactory factory, ZeroOptions options = {});
  ~ZeroOptimizer();
  // Hooks point at this object: it stays where it was built.
  ZeroOptimizer(const ZeroOptimizer&) = delete;
  ZeroOptimizer& operator=(const ZeroOptimizer&) = delete;

  // Forward through the model (waits for the last step's all-gathers; stage 3 gathers modules).
  Tensor operator()(const Tensor& input);
  // Backward from loss (scaled first in float16); the gradients are reduced during it and are
  // averaged (in the shards) when it returns.
  void backward(const Tensor& loss);
  // Scales the gradients so that their global 2-norm (over every rank's shard) is at most
  // max_norm; returns the norm from before. Optional, between backward and step.
  double clip_grad_norm(double max_norm);
  // Updates this rank's shard and shares the result. Returns false when float16 gradients
  // overflowed on some rank: then no rank stepped and the loss scale backed off.
  bool step();
  // Zeros the gradients (kept allocated: they are part of the model state).
  void zero_grad();

  double lr(size_t group = 0) const { return optimizer_->lr(group); }
  void set_lr(double lr) { optimizer_->set_lr(lr); }
  void set_lr(size_t group, double lr) { optimizer_->set_lr(group, lr); }
  // The shard's optimizer (hyper-parameters and schedules; its parameters are the shard's pieces).
  optim::Optimizer& optimizer() { return *optimizer_; }
  const optim::Optimizer& optimizer() const { return *optimizer_; }
  double loss_scale() const { return scaler_.scale(); }

  Module& module() const { return *model_; }
  ProcessGroup& process_group() const { return *group_; }
  int stage() const { return strategy_.stage(); }
  const ShardingStrategy& sharding_strategy() const { return strategy_; }
  DType compute_dtype() const { return compute_dtype_; }
  DType master_dtype() const { return master_dtype_; }
  const std::vector<ShardedUnit>& units() const { return units_; }
  // Stage 3: the order in which the first iteration needed the units (for tests).
  const ParameterGatherer* parameter_gatherer() const { return gatherer_.get(); }
  // The gradient path (its engine reports the bucket bytes in flight; for tests and tuning).
  const GradientSharder& gradient_sharder() const { return *sharder_; }

  // Stages 1-2: step() leaves the updated parameters being all-gathered into the model's tensors
  // in the background (the next forward waits for them). Call this before reading the model's
  // parameters any other way (its state_dict, a plain checkpoint). Local.
  void wait_for_parameters() const;

  // Every trainable parameter's current value (the masters: fp32 in mixed precision), whole, by
  // name. Collective: every rank calls it and gets all of them.
  StateDict full_parameters() const;

  ZeroMemoryReport memory_report() const;

  // What this rank must save of the model and optimizer, named as in dist/tensor_fragment.h:
  // "model.<name>" (the master values), "optimizer.state.<name>.<state>" — this rank's pieces —
  // and, from rank 0 only, "optimizer.state.<name>.step", "optimizer.param_groups.<g>.*" and, in
  // float16, "loss_scaler.scale" and "loss_scaler.growth_tracker". Stage 0: rank 0 saves
  // everything whole. Copies, taken now.
  std::vector<TensorFragment> state_fragments() const;
  // Loads what state_fragments() saved, at any world size and stage: each rank reads the ranges
  // of its own pieces. Optimizer state is loaded when the source has it. Collective.
  void load_state_fragments(const FragmentSource& source);

 private:
  // One parameter's part of this rank's shard: a piece the shard's optimizer updates.
  struct Piece {
    size_t parameter;
    size_t unit;
    int64_t tensor_begin;
    int64_t length;
    int64_t shard_offset;  // within the unit's shard
    Tensor master;         // 1-D view of the unit's master shard
  };

  // The state dict's buffers and frozen parameters, without aliases of trained parameters.
  std::vector<std::pair<std::string, Tensor>> untrained_state() const;
  void build_units(const std::vector<NamedTensor>& parameters);
  void build_buffers(const std::vector<Tensor>& original_values);
  void build_pieces_and_optimizer(OptimizerFactory& factory);
  void synchronize_gradients();
  void prepare_master_gradients();
  void refresh_compute_parameters();

  std::shared_ptr<Module> model_;
  std::shared_ptr<const DeferredParameters> deferred_;  // during construction only
  ZeroOptions options_;
  ShardingStrategy strategy_;  // from options_.stage, chosen once
  std::shared_ptr<ProcessGroup> group_;
  DType compute_dtype_ = kFloat32;
  DType master_dtype_ = kFloat32;
  std::vector<std::string> names_;   // trainable parameters, in registration order
  std::vector<Tensor> parameters_;
  std::vector<size_t> group_of_;     // by parameter
  size_t group_count_ = 1;
  std::vector<int64_t> index_in_groups_;  // by parameter: its number across groups (optimizer numbering)
  std::vector<ShardedUnit> units_;
  std::vector<std::pair<Module*, std::vector<size_t>>> module_units_;  // stage 3
  std::vector<size_t> launch_order_;
  std::vector<Piece> pieces_;        // in the shard optimizer's parameter order
  std::unique_ptr<optim::Optimizer> optimizer_;
  std::unique_ptr<GradientSharder> sharder_;
  std::unique_ptr<ParameterGatherer> gatherer_;
  ShardedLossScaler scaler_;
  std::vector<int64_t> steps_;       // by parameter: updates applied
  bool gradients_synchronized_ = false;
  bool master_gradients_ready_ = false;
  bool found_inf_ = false;
};

}  // namespace dtrain::dist
