#pragma once
// Consolidation: one plain file from a sharded checkpoint of any world size and ZeRO stage, as
// DeepSpeed's zero_to_fp32 — for inference, export, or a single-process run.
//
//   dist::consolidate_checkpoint("ckpt/step-1000", "model.safetensors");
//   model->load_state_dict(load_safetensors("model.safetensors").tensors);   // any process
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
  // Every saved tensor under its checkpoint name ("model.fc.weight",
  // "optimizer.state.fc.weight.exp_avg", ...) instead of the model's weights alone.
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

// Writes output_file (safetensors, atomically): by default the "model.*" tensors under the
// model's own names ("fc.weight"), whole, in the dtype they were saved in (fp32 masters under
// mixed precision) — a state dict that Module::load_state_dict takes. Its metadata records the
// step and the checkpoint. Raises naming the shard file and the tensor when a file is missing or
// damaged.
ConsolidateSummary consolidate_checkpoint(const std::filesystem::path& dir, const std::filesystem::path& output_file,
                                          const ConsolidateOptions& options = {});

// A train/checkpoint.h training checkpoint (model, optimizer by parameter index, training state)
// from a sharded one: loads model and optimizer from it (load_whole_state; they lay the named
// state out by index) and saves them with rank 0's training state, which it returns.
train::TrainingState consolidate_training_checkpoint(const std::filesystem::path& dir,
                                                     const std::filesystem::path& output_file, Module& model,
                                                     optim::Optimizer& optimizer);

}  // namespace dtrain::dist
