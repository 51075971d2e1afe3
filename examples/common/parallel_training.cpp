#include "examples/common/parallel_training.h"

#include <cstdio>
#include <filesystem>
#include <utility>
#include <vector>

#include "core/allocator.h"
#include "core/cuda_device.h"
#include "core/grad_mode.h"
#include "core/ops/elementwise.h"
#include "dist/checkpoint/sharded_checkpoint.h"
#include "dist/checkpoint/sharded_save.h"
#include "dist/checkpoint/whole_state.h"
#include "dist/device_choice.h"
#include "dist/init.h"
#include "examples/common/checkpoint_rotation.h"
#include "examples/common/checkpoint_source.h"
#include "optim/clip_grad.h"
#include "tools/command_line/program_exit.h"
#include "train/checkpoint.h"

namespace dtrain::examples {

namespace {

DType compute_dtype_of(const std::string& precision, Device device) {
  if (precision == "bf16" || (precision == "auto" && device.is_cuda())) return kBFloat16;
  if (precision == "fp16") return kFloat16;
  return kFloat32;
}

std::string mebibytes(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return text;
}

}  // namespace

void add_parallel_flags(FlagParser& flags, ParallelChoice& choice) {
  flags.add_choice("device", choice.device, dist::kDeviceChoices,
                   "auto: cuda:(local rank mod visible GPUs) when a GPU is visible, else the CPU; cpu; cuda");
  flags.add("zero-stage", choice.zero_stage,
            "0: DDP; 1, 2, 3: ZeRO sharding of optimizer state, + gradients, + parameters");
  flags.add_choice("precision", choice.precision, {"fp32", "bf16", "fp16", "auto"},
                   "compute dtype; bf16 and fp16 keep fp32 master weights (fp16 scales the loss); "
                   "auto: bf16 on a GPU, fp32 on the CPU");
  flags.add("grad-accum", choice.grad_accum,
            "micro-batches of --batch per optimizer step (DDP all-reduces only the last one's backward)");
}

Device resolve_parallel_flags(ParallelChoice& choice) {
  if (choice.zero_stage < 0 || choice.zero_stage > 3) {
    usage_error("--zero-stage must be 0, 1, 2 or 3, got ", choice.zero_stage);
  }
  if (choice.grad_accum < 1) usage_error("--grad-accum must be >= 1, got ", choice.grad_accum);
  if (choice.device == "cuda" && !cuda::is_available()) {
    usage_error("--device cuda: no usable GPU (", cuda::unavailable_reason(), ")");
  }
  Device device = dist::choose_training_device(choice.device);
  choice.device = device.is_cuda() ? "cuda" : "cpu";
  if (choice.precision == "auto") choice.precision = device.is_cuda() ? "bf16" : "fp32";
  return device;
}

ParallelTraining::ParallelTraining(std::shared_ptr<Module> model, const OptimizerChoice& optimizer,
                                   const ParallelChoice& choice, dist::RunSettings settings)
    : model_(std::move(model)),
      device_(dist::choose_training_device(choice.device)),
      compute_dtype_(compute_dtype_of(choice.precision, device_)) {
  model_->to(device_);
  dist::RunSettings run_settings{{"zero_stage", setting_text(choice.zero_stage)},
                                 {"precision", dtype_name(compute_dtype_)},
                                 {"grad_accum", setting_text(choice.grad_accum)},
                                 {"optimizer", optimizer.name},
                                 {"lr", setting_text(optimizer.lr)},
                                 {"weight_decay", setting_text(optimizer.weight_decay)},
                                 {"momentum", setting_text(optimizer.momentum)}};
  run_settings.insert(run_settings.end(), settings.begin(), settings.end());
  if (choice.zero_stage == 0 && compute_dtype_ == kFloat32) {
    // Averages gradients in backward.
    ddp_ = std::make_unique<dist::DistributedDataParallel>(
        model_, dist::DistributedDataParallelOptions{.settings = std::move(run_settings)});
    optimizer_ = make_optimizer(optimizer, model_->parameters());
    return;
  }
  // The shard's optimizer: the example's choice, over this rank's pieces of the fp32 masters.
  dist::OptimizerFactory factory = [optimizer](std::vector<std::vector<Tensor>> groups) {
    std::vector<Tensor> pieces;
    for (auto& group : groups) pieces.insert(pieces.end(), group.begin(), group.end());
    return make_optimizer(optimizer, std::move(pieces));
  };
  dist::ZeroOptions options{.stage = static_cast<int>(choice.zero_stage), .settings = std::move(run_settings)};
  if (compute_dtype_ != kFloat32) options.compute_dtype = compute_dtype_;
  zero_ = std::make_unique<dist::ZeroOptimizer>(model_, std::move(factory), options);
}

Tensor ParallelTraining::operator()(const Tensor& input) {
  // Without autograd (evaluation, sampling) DDP has nothing to synchronise: the module alone, so
  // that rank 0 can evaluate while the others wait.
  const Tensor on_device = input.device() == device_ ? input : input.to(device_);
  if (ddp_) {
    if (!grad_mode_enabled()) return (*model_)(on_device);
    if (gradient_sync_) return (*ddp_)(on_device);
    auto no_sync = ddp_->no_sync();
    return (*ddp_)(on_device);
  }
  const bool cast = is_floating(on_device.dtype()) && on_device.dtype() != compute_dtype_;
  Tensor output = (*zero_)(cast ? on_device.to(compute_dtype_) : on_device);
  return is_floating(output.dtype()) && output.dtype() != kFloat32 ? output.to(kFloat32) : output;
}

void ParallelTraining::backward(const Tensor& loss) {
  if (ddp_) {
    loss.backward();
  } else {
    zero_->backward(loss);
  }
}

void ParallelTraining::clip_grad_norm(double max_norm) {
  if (ddp_) {
    optim::clip_grad_norm(model_->parameters(), max_norm);
  } else {
    zero_->clip_grad_norm(max_norm);
  }
}

double ParallelTraining::accumulation_step(int64_t micro_batches, const std::function<Tensor(int64_t)>& micro_batch_loss,
                                           double grad_clip) {
  double loss_sum = 0;
  for (int64_t i = 0; i < micro_batches; ++i) {
    gradient_sync_ = i + 1 == micro_batches;
    Tensor loss = micro_batch_loss(i);
    gradient_sync_ = true;
    backward(micro_batches == 1 ? loss : loss / static_cast<double>(micro_batches));
    loss_sum += loss.item();
  }
  if (grad_clip > 0) clip_grad_norm(grad_clip);
  step();
  return loss_sum / static_cast<double>(micro_batches);
}

bool ParallelTraining::step() {
  if (!ddp_) return zero_->step();
  optimizer_->step();
  return true;
}

void ParallelTraining::zero_grad() {
  if (ddp_) {
    optimizer_->zero_grad();
  } else {
    zero_->zero_grad();
  }
}

void ParallelTraining::set_lr(double lr) {
  if (ddp_) {
    optimizer_->set_lr(lr);
  } else {
    zero_->set_lr(lr);
  }
}

std::string ParallelTraining::description() const {
  if (ddp_) return "DDP, fp32";
  std::string text = "ZeRO stage " + std::to_string(zero_->stage());
  text += compute_dtype_ == kFloat32 ? ", fp32" : std::string(", ") + dtype_name(compute_dtype_) + " compute, fp32 masters";
  return text;
}

std::string ParallelTraining::optimizer_name() const { return ddp_ ? optimizer_->name() : zero_->optimizer().name(); }

std::string ParallelTraining::memory_line() const {
  if (zero_) return zero_->memory_report().str();
  MemoryStats stats = memory_stats();
  auto counter = [&](MemoryTag tag) {
    return mebibytes(stats[tag].current) + " (peak " + mebibytes(stats[tag].peak) + ")";
  };
  return "ddp rank " + std::to_string(dist::rank()) + "/" + std::to_string(dist::world_size()) +
         ": params " + counter(MemoryTag::Parameters) + ", grads " + counter(MemoryTag::Gradients) +
         ", optimizer " + counter(MemoryTag::OptimizerState) + ", comm " + counter(MemoryTag::Communication);
}

void ParallelTraining::save(const std::string& path, const train::TrainingState& state, bool as_directory) {
  if (zero_) {
    dist::save_sharded_checkpoint(path, zero_->state_fragments(), state, &dist::world());
  } else if (as_directory || std::filesystem::is_directory(path)) {
    dist::save_whole_state(path, *model_, *optimizer_, state, &dist::world());
  } else if (dist::rank() == 0) {
    train::save_checkpoint(path, *model_, *optimizer_, state);
  }
}

train::TrainingState ParallelTraining::load(const std::string& path) {
  if (!std::filesystem::is_directory(path)) {
    if (zero_) {
      usage_error("--resume ", path, ": a ZeRO run resumes from a sharded checkpoint directory (one that a run with "
                  "--zero-stage 1-3 or --precision bf16/fp16 wrote, or dist::save_whole_state)");
    }
    return train::load_checkpoint(path, *model_, *optimizer_);
  }
  auto checkpoint = dist::ShardedCheckpoint::open(path, &dist::world());
  if (zero_) {
    zero_->load_state_fragments(checkpoint);
  } else {
    dist::load_whole_state(checkpoint, *model_, *optimizer_, &dist::world());
  }
  train::TrainingState state = checkpoint.training_state();
  // Saved at another world size, every rank got rank 0's loader position, counted in batches of
  // that world size: continue at the same fraction of the epoch (see README, "Sharded checkpoints").
  if (checkpoint.saved_world_size() != dist::world_size()) {
    for (auto& [name, loader] : state.loaders) {
      loader.batch = loader.batch * checkpoint.saved_world_size() / dist::world_size();
    }
  }
  return state;
}

int64_t ParallelTraining::resume(const std::string& path, DataLoader& loader) {
  std::string from = resolve_checkpoint_path(path);
  train::TrainingState state = read_input([&] { return load(from); });
  train::restore_generator(state.generator("default"));
  loader.set_state(state.loader("train"));
  std::printf("resumed from %s at step %lld%s\n", from.c_str(), static_cast<long long>(state.step),
              state.verified ? "" : " (the file carries no checksums: its data could not be verified)");
  return state.step;
}

void ParallelTraining::save_checkpoint(const std::string& path, int64_t step, const DataLoader& loader,
                                       std::map<std::string, std::string> metadata, int64_t keep_checkpoints) {
  train::TrainingState state{.step = step,
                             .generators = {{"default", train::generator_state()}},
                             .loaders = {{"train", loader.state()}},
                             .metadata = std::move(metadata)};
  if (keep_checkpoints == 0) {
    save(path, state);
    return;
  }
  // The save returns on every rank once the new directory is complete; only then go the old ones.
  save(rotated_checkpoint_dir(path, step).string(), state, true);
  if (dist::rank() == 0) remove_old_rotated_checkpoints(path, keep_checkpoints);
}

}  // namespace dtrain::examples
