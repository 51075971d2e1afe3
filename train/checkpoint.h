#pragma once
// Training checkpoints: one safetensors file holding the model ("model.<name>"), the optimizer
// ("optimizer.state.<parameter name>.<state name>", "optimizer.param_groups.*": the naming of
// train/checkpoint_names.h, which sharded and consolidated files share) and the TrainingState
// (step, generators, data loaders, user metadata) as strings in the file's __metadata__. The
// file opens in PyTorch (safetensors.torch.load_file) like any other.
//
//   train::save_checkpoint(path, *model, optimizer,
//                          {.step = step,
//                           .generators = {{"default", train::generator_state()}},
//                           .loaders = {{"train", loader.state()}}});
//   ...
//   train::TrainingState state = train::load_checkpoint(path, *model, optimizer);
//   train::restore_generator(state.generator("default"));
//   loader.set_state(state.loader("train"));
//
// With the same thread count, a run resumed this way continues bitwise identically to one that
// never stopped.
#include <filesystem>

#include "layers/module.h"
#include "optim/optimizer.h"
#include "train/training_state.h"

namespace dtrain::train {

// Writes the checkpoint atomically (core/atomic_file.h: a temporary file, fsync, rename), so a
// crash at any moment leaves the previous checkpoint or the new one, whole; the save also removes
// the temporaries of saves to path that a crash interrupted. Each tensor's CRC-32 goes into the
// header (core/safetensors.h).
void save_checkpoint(const std::filesystem::path& path, const Module& model, const optim::Optimizer& optimizer,
                     const TrainingState& state);

// Loads model and optimizer state in place and returns the rest. Everything is checked before
// anything is changed: a truncated or corrupted file (every tensor's bytes against the CRC-32
// saved with it; a file without checksums loads with state.verified false), a model tensor that is missing,
// unexpected or of another shape or dtype, another optimizer type or parameter layout, or bad
// metadata raise one dtrain::Error naming the file and every offending tensor or key, and
// leave model and optimizer untouched. Files of format v1 (optimizer state keyed by parameter
// index, "optimizer.state.0.exp_avg") load as well. The optimizer's parameters must be the
// model's (their names key the state).
TrainingState load_checkpoint(const std::filesystem::path& path, Module& model, optim::Optimizer& optimizer);

}  // namespace dtrain::train
