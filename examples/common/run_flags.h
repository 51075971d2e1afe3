#pragma once
// The flags every example shares: randomness, threads, checkpoints, metrics and logging, plus
// the optimizer's.
#include <cstdint>
#include <string>

#include "data/dataloader.h"
#include "dist/model_consistency.h"
#include "tools/command_line/flags.h"
#include "train/optimizer_choice.h"
#include "train/trainer.h"

namespace dtrain::examples {

struct RunFlags {
  uint64_t seed = 0;             // model initialisation, data order, dropout
  int64_t threads = 0;           // 0: OpenMP's default (every core)
  std::string checkpoint;        // where to save; empty: never
  int64_t checkpoint_every = 0;  // steps between saves; 0: only at the end
  int64_t keep_checkpoints = 0;  // > 0: a directory per save under --checkpoint, the newest K kept
  std::string resume;            // a checkpoint to continue from
  std::string init_from;         // a weights-only safetensors file to start from (train/load_weights.h)
  int64_t stop_after = 0;        // end the run after this step, keeping the full run's schedule
  std::string metrics;           // a JSONL file to append metrics to
  int64_t log_every = 50;        // steps per metrics line (and per progress line in a log)

  void add_to(FlagParser& flags);
  // Raises a usage error for values out of range (and for --init-from with --resume); applies --threads.
  void check_and_apply() const;
  // The step this run ends at: total_steps, or --stop-after when that comes first.
  int64_t last_step(int64_t total_steps) const;
  // Whether to save after `step`: with --checkpoint, every --checkpoint-every steps and at the end.
  bool checkpoint_due(int64_t step, int64_t last_step) const;
  // Sets the trainer's checkpoint path, interval and rotation, and its weights-only start.
  void apply_to(train::TrainerOptions& options) const;
  // Before training: with --resume, continues the trainer and loader from the checkpoint (an
  // unreadable one is a usage error) and prints "resumed from <path> at step N"; with
  // --init-from, prints that the weights came from there.
  void start(train::Trainer& trainer, DataLoader& loader) const;
  // What every rank must share: the seed and when and where the ranks save and resume together
  // (not threads, metrics or logging, which are each rank's own).
  dist::RunSettings settings() const;
};

void add_optimizer_flags(FlagParser& flags, train::OptimizerChoice& choice);
void check_optimizer_flags(const train::OptimizerChoice& choice);
// The optimizer's name and hyperparameters, which every rank must share.
dist::RunSettings optimizer_settings(const train::OptimizerChoice& choice);

}  // namespace dtrain::examples
