#pragma once
// How an example trains on one rank or many: DistributedDataParallel with a plain optimizer
// (--zero-stage 0, fp32), or dist::ZeroOptimizer (--zero-stage 1|2|3, or any stage with
// --precision bf16|fp16: fp32 master weights in the shard), on the CPU or this rank's GPU
// (--device). Without mpirun both are a world of one. The training loop is the same either way:
//
//   ParallelTraining training(model, config.optimizer, config.parallel);
//   training.set_lr(lr);
//   training.zero_grad();
//   Tensor loss = cross_entropy(training(batch.inputs), batch.targets);
//   training.backward(loss);
//   training.step();
//
// Checkpoints: with DDP a single file (train/checkpoint.h) that rank 0 writes, unless the path
// is an existing directory; with ZeRO a sharded checkpoint directory (dist/checkpoint/) that
// every rank writes its part of. Either mode resumes from a sharded directory saved at any world
// size and stage; a single file resumes a DDP run only.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/device.h"
#include "data/dataloader.h"
#include "dist/ddp.h"
#include "dist/zero/zero_optimizer.h"
#include "examples/common/optimizer_choice.h"
#include "layers/module.h"
#include "optim/optimizer.h"
#include "tools/command_line/flags.h"
#include "train/training_state.h"

namespace dtrain::examples {

struct ParallelChoice {
  int64_t zero_stage = 0;          // 0: DDP (or ZeRO's replicated stage 0 with bf16/fp16), 1-3: ZeRO
  std::string precision = "auto";  // fp32 | bf16 | fp16: the dtype forward and backward run in;
                                   // auto: bf16 on a GPU, fp32 on the CPU
  std::string device = "auto";     // auto | cpu | cuda (dist/device_choice.h)
  int64_t grad_accum = 1;          // micro-batches per optimizer step
};

void add_parallel_flags(FlagParser& flags, ParallelChoice& choice);
// Checks the values, then (dist::init() must have run) picks this rank's device, replacing
// device auto by cpu or cuda and precision auto by bf16 (GPU) or fp32 (CPU). --device cuda
// without a usable GPU is a usage error (exit 2) with the reason. Returns the device.
Device resolve_parallel_flags(ParallelChoice& choice);

class ParallelTraining {
 public:
  // settings: the example's own settings that every rank must share (batch, steps, seed, model
  // sizes, ...). With the optimizer's and the parallel choice's, and the model's own
  // (Module::describe), they are compared across ranks at start: a difference ends the run on
  // every rank, naming the setting and both values.
  ParallelTraining(std::shared_ptr<Module> model, const OptimizerChoice& optimizer, const ParallelChoice& choice,
                   dist::RunSettings settings = {});

  // The model's forward. Inputs are moved to the training device, floating ones cast to the
  // compute dtype; floating outputs come back in float32, so losses are computed in fp32 (as
  // PyTorch's autocast does).
  Tensor operator()(const Tensor& input);
  // Where the model lives (choice.device resolved): targets go there too.
  Device device() const { return device_; }
  // One optimizer step over micro_batches micro-batches (gradient accumulation): for each i,
  // micro_batch_loss(i) runs the forward through this object and returns the loss; its backward
  // runs on loss / micro_batches. With DDP the first micro_batches - 1 backwards all-reduce
  // nothing (no_sync); ZeRO stages 0-1 reduce once, at the step; stages 2-3 reduce-scatter every
  // micro-batch into the gradient shard (the whole gradient is never kept, as DeepSpeed). Then
  // gradients are clipped to grad_clip (0: not) and the optimizer steps. Returns the mean loss.
  double accumulation_step(int64_t micro_batches, const std::function<Tensor(int64_t)>& micro_batch_loss,
                           double grad_clip);
  // Backward from loss (scaled first with fp16); gradients are averaged across ranks.
  void backward(const Tensor& loss);
  // Scales gradients to a global 2-norm of at most max_norm.
  void clip_grad_norm(double max_norm);
  // False when fp16 gradients overflowed (every rank skipped the step).
  bool step();
  void zero_grad();
  void set_lr(double lr);

  // With ZeRO stage 3 the parameters live in shards and every forward gathers them: evaluation
  // must run on every rank, not on rank 0 alone.
  bool forward_is_collective() const { return zero_ && zero_->stage() == 3; }
  // "DDP, fp32" or "ZeRO stage 2, bf16 compute, fp32 masters" — for the start-up line.
  std::string description() const;
  std::string optimizer_name() const;
  // ZeRO's per-rank memory report line; with DDP, the allocator's counters for parameters,
  // gradients and optimizer state.
  std::string memory_line() const;

  // Collective in ZeRO mode (every rank calls it); with DDP only rank 0 writes a single file,
  // unless the path is a directory or as_directory is set (a sharded directory, every rank).
  void save(const std::string& path, const train::TrainingState& state, bool as_directory = false);
  // Loads path into model and optimizer and returns the training state to continue from. Every
  // rank calls it.
  train::TrainingState load(const std::string& path);

  // What an example's --resume and --checkpoint do: the step, the default generator and the
  // training loader's position ("train") with the run's metadata. resume() loads path (an
  // unreadable checkpoint is a usage error; a folder of --keep-checkpoints directories resumes
  // from the newest complete one), restores the generator and the loader, reports the step on
  // stdout and returns it. With keep_checkpoints > 0, save_checkpoint writes path/step-<N>, a
  // sharded directory, and then removes all but the newest keep_checkpoints
  // (examples/common/checkpoint_rotation.h).
  int64_t resume(const std::string& path, DataLoader& loader);
  void save_checkpoint(const std::string& path, int64_t step, const DataLoader& loader,
                       std::map<std::string, std::string> metadata, int64_t keep_checkpoints = 0);

 private:
  std::shared_ptr<Module> model_;
  Device device_;
  DType compute_dtype_ = kFloat32;
  bool gradient_sync_ = true;  // false: DDP forwards run under no_sync
  std::unique_ptr<dist::DistributedDataParallel> ddp_;
  std::unique_ptr<optim::Optimizer> optimizer_;
  std::unique_ptr<dist::ZeroOptimizer> zero_;
};

}  // namespace dtrain::examples
