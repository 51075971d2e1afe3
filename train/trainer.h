#pragma once
// Trainer: the training loop every dtrain program needs, around a user's own model — one or many
// ranks (DDP or a ZeRO stage, chosen once), precision, gradient accumulation, clipping, a
// learning-rate schedule, checkpoints every N steps and resuming from them (at any world size
// and ZeRO stage), a callback after each step for metrics and progress.
//
//   dist::init(&argc, &argv);                     // a world of one without mpirun
//   auto model = std::make_shared<MyNet>();
//   train::Trainer trainer(model, [](std::vector<Tensor> parameters) {
//     return std::make_unique<optim::AdamW>(std::move(parameters), optim::AdamWOptions{.lr = 1e-3});
//   }, {.data_parallel = train::DataParallel::Zero, .zero_stage = 2, .checkpoint = "run"});
//   DataLoader loader(dataset, {.batch_size = 64, .sampler = dist::distributed_sampler(dataset->size())});
//   trainer.fit(loader, 1000, [&](const Batch& batch) {
//     return cross_entropy(trainer(batch.inputs), batch.targets.to(trainer.device()));
//   });
//
// Checkpoints: with DDP (or no data parallelism) one file that rank 0 writes (train/checkpoint.h),
// unless the path is an existing directory or keep_checkpoints is set; with ZeRO a sharded
// directory (dist/checkpoint/) of which every rank writes its part. Either resumes from a sharded
// directory saved at any world size and stage; a single file resumes DDP (or None) only.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "data/dataloader.h"
#include "dist/ddp.h"
#include "dist/model_consistency.h"
#include "dist/zero/zero_optimizer.h"
#include "layers/module.h"
#include "layers/state_dict.h"
#include "optim/lr_schedule.h"
#include "optim/optimizer.h"
#include "train/training_state.h"

namespace dtrain::train {

class TrainerCommunication;

// How the ranks share the training, chosen once.
enum class DataParallel {
  None,  // the model and its optimizer alone: no communication (one process)
  DDP,   // dist::DistributedDataParallel: gradients all-reduced during backward
  Zero,  // dist::ZeroOptimizer at TrainerOptions::zero_stage
};

// What a step reports to TrainerOptions::on_step.
struct StepReport {
  int64_t step = 0;    // optimizer steps done, this one included
  double loss = 0;     // this rank's mean loss over the step's micro-batches
  double lr = 0;       // the learning rate the step used
  bool applied = true; // false when fp16 gradients overflowed and every rank skipped the update
  // Payload bytes this rank handed to collectives during the step (dist/communication_volume.h).
  int64_t communication_bytes = 0;
};

// Makes the optimizer over the given parameters (the model's, or with ZeRO this rank's shard of
// the fp32 masters): e.g. train::make_optimizer(choice, std::move(parameters)).
using OptimizerFactory = std::function<std::unique_ptr<optim::Optimizer>(std::vector<Tensor> parameters)>;

struct TrainerOptions {
  DataParallel data_parallel = DataParallel::DDP;
  int zero_stage = 1;  // Zero only: 0 (replicated), 1 (optimizer state sharded), 2 (+ gradients), 3 (+ parameters)
  // DDP only, fp32: what the ranks exchange each step (train/trainer_communication.h) — "ddp" (the
  // exact all-reduce), "bf16", "fp16", "powersgd:4", "int8", "1bit", "topk:0.01", "local-sgd:8",
  // "gossip". communication_start_step: the compressions all-reduce exactly, local SGD runs DDP
  // steps, before it.
  std::string communication = "ddp";
  int64_t communication_start_step = 0;
  // The dtype forward and backward run in. Unset: the model's own (fp32 or fp64). kBFloat16 or
  // kFloat16: mixed precision, with fp32 master weights and (fp16) dynamic loss scaling. ZeRO
  // keeps the masters, so DDP in mixed precision runs as ZeRO stage 0, its replicated
  // equivalent; None refuses it.
  std::optional<DType> precision = std::nullopt;
  Device device = Device::cpu();  // the model is moved here (a rank's GPU: dist/device_choice.h)
  int64_t grad_accum = 1;         // micro-batches per optimizer step
  double grad_clip = 0;           // clip the gradients' global 2-norm to this (0: never)
  // The learning rate of each step (given the steps done before it); unset: the optimizer's own.
  optim::LrSchedule schedule = nullptr;
  // fit() saves to this path every checkpoint_every steps (0: only at its last step); empty: never.
  std::string checkpoint = "";
  int64_t checkpoint_every = 0;
  // > 0: each save is a sharded directory checkpoint/step-<N>, the newest keep_checkpoints kept
  // (train/checkpoint_rotation.h).
  int64_t keep_checkpoints = 0;
  std::map<std::string, std::string> checkpoint_metadata = {};  // stored with every checkpoint
  // Weights only (train/load_weights.h) loaded into the model before training; empty: none.
  std::string init_from = "";
  // Settings every rank must share (batch, model sizes, ...), compared across ranks at start with
  // the trainer's own (data parallelism, precision, accumulation, clipping) and the model's.
  dist::RunSettings settings = {};
  // Called after every step on every rank (metrics, progress, evaluation), and after each
  // checkpoint fit() saves (with the path written: a rotated save's step directory).
  std::function<void(const StepReport&)> on_step = nullptr;
  std::function<void(const std::string& path, int64_t step)> on_checkpoint = nullptr;
};

class Trainer {
 public:
  // Moves model to options.device, loads options.init_from, and wraps it for the chosen data
  // parallelism (dist::init() must have run for DDP and ZeRO). Raises dtrain::Error on a bad
  // option, on every rank alike.
  Trainer(std::shared_ptr<Module> model, OptimizerFactory optimizer, TrainerOptions options = {});
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // The model's forward. Inputs are moved to the training device, floating ones cast to the
  // compute dtype; floating outputs come back in float32 (under mixed precision), so losses are
  // computed in fp32, as PyTorch's autocast does.
  Tensor operator()(const Tensor& input);
  Device device() const { return device_; }
  Module& model() const { return *model_; }
  const TrainerOptions& options() const { return options_; }
  int64_t steps_done() const { return step_; }
  // Replaces options.on_step and options.on_checkpoint: for callbacks that use the trainer itself.
  void set_callbacks(std::function<void(const StepReport&)> on_step,
                     std::function<void(const std::string& path, int64_t step)> on_checkpoint = nullptr) {
    options_.on_step = std::move(on_step);
    options_.on_checkpoint = std::move(on_checkpoint);
  }

  // Until steps_done() reaches last_step: one step() whose micro-batch i takes loader.next() and
  // returns loss(batch); then on_step, then a checkpoint when one is due.
  void fit(DataLoader& loader, int64_t last_step, const std::function<Tensor(const Batch&)>& loss);
  // One optimizer step: the schedule's learning rate, zeroed gradients, grad_accum micro-batches
  // (micro_batch_loss(i) runs the forward through this object and returns the loss; its backward
  // runs on loss / grad_accum), clipping, the update. With DDP the first grad_accum - 1 backwards
  // all-reduce nothing (no_sync); ZeRO stages 0-1 reduce once at the update, 2-3 reduce-scatter
  // each micro-batch into the gradient shard. Counts the step and returns its report (on_step is
  // fit's, not called here).
  StepReport step(const std::function<Tensor(int64_t micro_batch)>& micro_batch_loss);

  // The pieces of a step, for a loop of one's own.
  void zero_grad();
  void backward(const Tensor& loss);  // scaled first under fp16; gradients averaged across ranks
  double clip_grad_norm(double max_norm);  // returns the norm before clipping
  bool optimizer_step();               // false when fp16 gradients overflowed (skipped on every rank)
  void set_lr(double lr);
  double lr() const;

  // Checkpoints. save_checkpoint stores the step, dtrain's default generator and loader's
  // position ("train") with options.checkpoint_metadata, rotating under keep_checkpoints.
  // resume loads path (for a folder of rotated directories the newest complete one), restores
  // the generator and the loader (its position rescaled when the world size changed) and the step
  // count, and returns the state it read. Every rank calls both.
  void save_checkpoint(const std::string& path, const DataLoader& loader);
  TrainingState resume(const std::string& path, DataLoader& loader);
  // The lower level: state as given; a single file unless ZeRO, as_directory or an existing
  // directory path says otherwise.
  void save(const std::string& path, const TrainingState& state, bool as_directory = false);
  TrainingState load(const std::string& path);

  // Every trainable parameter's value, whole, by name: the model's own, or with ZeRO the trained
  // values (fp32 masters under mixed precision) gathered from the shards — collective then:
  // every rank calls it and gets all of them.
  StateDict full_parameters() const;

  // With ZeRO stage 3 every forward gathers parameters: evaluation must run on every rank.
  bool forward_is_collective() const;
  // "DDP, fp32", "ZeRO stage 2, bf16 compute, fp32 masters", "no data parallelism, fp64".
  std::string description() const;
  std::string optimizer_name() const;
  // ZeRO's per-rank memory report; otherwise the allocator's counters for parameters, gradients,
  // optimizer state and communication.
  std::string memory_line() const;

 private:
  bool checkpoint_due(int64_t last_step) const;

  std::shared_ptr<Module> model_;
  TrainerOptions options_;
  Device device_;
  DType compute_dtype_ = kFloat32;
  int64_t step_ = 0;
  bool gradient_sync_ = true;  // false: DDP forwards run under no_sync
  std::unique_ptr<dist::DistributedDataParallel> ddp_;
  std::unique_ptr<optim::Optimizer> optimizer_;  // DDP and None
  std::unique_ptr<dist::ZeroOptimizer> zero_;
  std::unique_ptr<TrainerCommunication> communication_;  // DDP with another method than "ddp"
};

}  // namespace dtrain::train
