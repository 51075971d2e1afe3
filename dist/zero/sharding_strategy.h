#pragma once
// ShardingStrategy: what ZeRO shards at a stage, decided once when a ZeroOptimizer is built
// (ZeroOptions::stage stays the input), so the code asks what it needs ("are gradients
// sharded?") instead of comparing stage numbers.
//
//   stage  optimizer state  gradients (kept whole?)      parameters      gradient reduction
//   0      replicated       whole                        whole           all-reduce
//   1      sharded          whole buffer, own slot used  whole           reduce-scatter in place
//   2      sharded          shard only                   whole           reduce-scatter into shard
//   3      sharded          shard only                   gathered/used   reduce-scatter into shard
#include <string>

namespace dtrain::dist {

class ShardingStrategy {
 public:
  // Raises unless stage is 0-3.
  static ShardingStrategy for_stage(int stage);
  // ZeroOptions' default, stage 1.
  ShardingStrategy() : ShardingStrategy(1, true, false, false) {}

  int stage() const { return stage_; }
  // "zero-2"
  std::string name() const { return "zero-" + std::to_string(stage_); }
  // How many shards each flat buffer is cut into on world_size ranks (one when nothing is sharded).
  int shard_count(int world_size) const { return shards_optimizer_state_ ? world_size : 1; }
  bool shards_optimizer_state() const { return shards_optimizer_state_; }
  // Whether a rank keeps only its shard of the gradients (else the whole gradient buffer, into
  // which backward accumulates in place).
  bool shards_gradients() const { return shards_gradients_; }
  // Whether a rank keeps only its shard of the parameters between uses (gathered module by module).
  bool shards_parameters() const { return shards_parameters_; }
  // Whether gradients are all-reduced (every rank keeps the whole average) rather than
  // reduce-scattered (each rank keeps its shard's).
  bool all_reduces_gradients() const { return !shards_optimizer_state_; }
  // Whether step() all-gathers the updated parameters into every rank's whole buffer.
  bool gathers_parameters_after_step() const { return shards_optimizer_state_ && !shards_parameters_; }

 private:
  ShardingStrategy(int stage, bool optimizer_state, bool gradients, bool parameters)
      : stage_(stage),
        shards_optimizer_state_(optimizer_state),
        shards_gradients_(gradients),
        shards_parameters_(parameters) {}

  int stage_;
  bool shards_optimizer_state_;
  bool shards_gradients_;
  bool shards_parameters_;
};

}  // namespace dtrain::dist
