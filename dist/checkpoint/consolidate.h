#pragma once
// Consolidation: one plain file from a sharded checkpoint of any world size and ZeRO stage, as
// DeepSpeed's zero_to_fp32 — for inference, export, or a single-process run.
//
//   dist::consolidate_checkpoint("ckpt/step-1000", "model.safetensors");
//   train::load_weights(*model, "model.safetensors");                       // any process
//
// Every tensor keeps its checkpoint name ("model.fc.weight", "optimizer.state.fc.weight.exp_avg":
// train/checkpoint_names.h), the names a single-file checkpoint uses too. Files consolidated
// before that naming held the weights under bare names ("fc.weight"); load_weights reads
// both.
//
// The command `dtrain-consolidate <checkpoint dir> <output.safetensors> [--all] [--verify]` does
// the same from the shell.
#include <cstdint>
#include <filesystem>

#include "layers/module.h"
#include "optim/optimizer.h"
#include "train/training_state.h"

namespace dtrain::dist {

struct ConsolidateOptions {
  // Every saved tensor ("model.*", "optimizer.*", a ZeRO loss scaler's "loss_scaler.*") instead
  // of the model's weights alone.
  bool all_tensors = false;
  // Check every checksum of every shard file first, also of tensors not written out.
  bool verify = false;
};

struct ConsolidateSummary {
  int64_t step = 0;
  int saved_world_size = 0;
  int64_t tensors = 0;  // written
  int64_t bytes = 0;    // of tensor data written
};

// Writes output_file (safetensors, atomically): by default the "model.*" tensors, whole, in the
// dtype they were saved in (fp32 masters under mixed precision) — what train::load_weights
// takes. Its metadata records the step and the checkpoint. Raises naming the shard file and the
// tensor when a file is missing or damaged.
ConsolidateSummary consolidate_checkpoint(const std::filesystem::path& dir, const std::filesystem::path& output_file,
                                          const ConsolidateOptions& options = {});

// A train/checkpoint.h training checkpoint (model, optimizer, training state) from a sharded one:
// loads model and optimizer from it (load_whole_state) and saves them with rank 0's training
// state, which it returns. Its tensors have the same names as the sharded checkpoint's.
train::TrainingState consolidate_training_checkpoint(const std::filesystem::path& dir,
                                                     const std::filesystem::path& output_file, Module& model,
                                                     optim::Optimizer& optimizer);

}  // namespace dtrain::dist
