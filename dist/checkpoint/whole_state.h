#pragma once
// Sharded checkpoints of a plain model and optimizer — one process, or DDP where every rank holds
// whole tensors — in the same format and under the same names as ZeRO's (dist/tensor_fragment.h),
// so a ZeRO checkpoint of any stage and world size loads into a plain model and optimizer, and
// the other way round. Optimizer state is named by parameter name, not by the optimizer's
// parameter index, so it survives any re-partitioning:
//   optimizer "state.<i>.exp_avg"  <->  "optimizer.state.<name of parameter i>.exp_avg"
// where the name is the model's (named_parameters) for the optimizer's i-th parameter — the
// naming a single-file checkpoint uses too (train/checkpoint_names.h).
//
//   dist::save_whole_state("ckpt/step-1000", *model, optimizer, state, &dist::world());
//   ...
//   auto checkpoint = dist::ShardedCheckpoint::open("ckpt/step-1000", &dist::world());
//   dist::load_whole_state(checkpoint, *model, optimizer, &dist::world());
#include <filesystem>
#include <vector>

#include "dist/checkpoint/sharded_checkpoint.h"
#include "dist/checkpoint/sharded_save.h"
#include "dist/process_group.h"
#include "dist/tensor_fragment.h"
#include "layers/module.h"
#include "optim/optimizer.h"
#include "train/training_state.h"

namespace dtrain::dist {

// The model's state dict ("model.<name>") and the optimizer's state, named as above, as
// fragments: of every tensor the part-th of `parts` near-equal runs (the last part holds what
// does not divide evenly; 0-d tensors go to the last part). The default, part 0 of 1, is every
// tensor whole. The fragments share memory with the model and the optimizer. Raises when an
// optimizer parameter is not one of the model's parameters (it would have no name).
std::vector<TensorFragment> whole_state_fragments(const Module& model, const optim::Optimizer& optimizer, int part = 0,
                                                  int parts = 1);

// Every rank of group calls it with the same model and optimizer values (DDP keeps them so);
// rank r writes part r of every tensor, so the ranks write in parallel. Group null: this
// process alone.
void save_whole_state(const std::filesystem::path& dir, const Module& model, const optim::Optimizer& optimizer,
                      const train::TrainingState& state, ProcessGroup* group = nullptr,
                      const ShardedSaveOptions& options = {});

// Loads model and optimizer from a checkpoint of any world size and ZeRO stage. Every tensor is
// read and checked first — a missing, unexpected or differently shaped model tensor, optimizer
// state of a parameter the optimizer does not have, a bad shard file — and nothing changes unless
// all of it fits; one dtrain::Error names the checkpoint and every offending tensor (or the shard
// file that failed). Floating-point values are converted to the model's dtypes (fp32 masters
// into a bf16 model). Tensors outside "model.*" and "optimizer.*" (a ZeRO loss scaler's
// "loss_scaler.*") are left alone, for the caller to read. With group, every rank of group calls
// it and all load or all raise.
void load_whole_state(const ShardedCheckpoint& checkpoint, Module& model, optim::Optimizer& optimizer,
                      ProcessGroup* group = nullptr);

}  // namespace dtrain::dist
