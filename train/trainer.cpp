#include "train/trainer.h"

#include <cstdio>
#include <filesystem>
#include <utility>

#include "core/allocator.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/ops/elementwise.h"
#include "dist/checkpoint/sharded_checkpoint.h"
#include "dist/checkpoint/sharded_save.h"
#include "dist/checkpoint/whole_state.h"
#include "dist/communication_volume.h"
#include "dist/init.h"
#include "optim/clip_grad.h"
#include "train/checkpoint.h"
#include "train/checkpoint_rotation.h"
#include "train/load_weights.h"
#include "train/trainer_checkpoint_source.h"
#include "train/trainer_communication.h"

namespace dtrain::train {

namespace {

bool is_half(DType dtype) { return dtype == kBFloat16 || dtype == kFloat16; }

// The model's floating dtype (fp32 when it has no floating parameter).
DType model_dtype(const Module& model) {
  for (const Tensor& parameter : model.parameters()) {
    if (is_floating(parameter.dtype())) return parameter.dtype();
  }
  return kFloat32;
}

std::string mebibytes(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return text;
}

const char* data_parallel_name(DataParallel mode) {
  switch (mode) {
    case DataParallel::None: return "none";
    case DataParallel::DDP: return "ddp";
    case DataParallel::Zero: return "zero";
  }
  return "?";
}

// "fp32", "fp64"; the half types by their full names ("bfloat16"), as the start-up lines show them.
std::string precision_text(DType dtype) {
  if (dtype == kFloat32) return "fp32";
  if (dtype == kFloat64) return "fp64";
  return dtype_name(dtype);
}

int rank_or_zero() { return dist::is_initialized() ? dist::rank() : 0; }

void check_options(const TrainerOptions& options) {
  if (options.data_parallel == DataParallel::Zero && (options.zero_stage < 0 || options.zero_stage > 3)) {
    fail("Trainer: zero_stage must be 0, 1, 2 or 3, got ", options.zero_stage);
  }
  if (options.precision && !is_floating(*options.precision)) {
    fail("Trainer: precision must be a floating dtype (fp32, fp64, bf16, fp16), got ", dtype_name(*options.precision));
  }
  if (options.precision && is_half(*options.precision) && options.data_parallel == DataParallel::None) {
    fail("Trainer: ", dtype_name(*options.precision), " training keeps fp32 master weights, which ZeRO holds: use ",
         "DataParallel::Zero (stage 0 replicates everything, as DDP) or DataParallel::DDP, not None");
  }
  if (options.grad_accum < 1) fail("Trainer: grad_accum must be >= 1, got ", options.grad_accum);
  if (!(options.grad_clip >= 0)) fail("Trainer: grad_clip must be >= 0, got ", options.grad_clip);
  if (options.checkpoint_every < 0) fail("Trainer: checkpoint_every must be >= 0, got ", options.checkpoint_every);
  if (options.keep_checkpoints < 0) fail("Trainer: keep_checkpoints must be >= 0, got ", options.keep_checkpoints);
  if (options.communication != kExactCommunication) {
    check_communication_spec(options.communication);
    if (options.data_parallel != DataParallel::DDP) {
      fail("Trainer: communication '", options.communication, "' replaces DDP's all-reduce: it needs ",
           "DataParallel::DDP, got ", data_parallel_name(options.data_parallel));
    }
    if (options.precision && is_half(*options.precision)) {
      fail("Trainer: communication '", options.communication, "' runs on fp32 DDP; ", dtype_name(*options.precision),
           " training runs as ZeRO stage 0, which has no communication hooks");
    }
  }
  if (options.communication_start_step < 0) {
    fail("Trainer: communication_start_step must be >= 0, got ", options.communication_start_step);
  }
}

}  // namespace

Trainer::Trainer(std::shared_ptr<Module> model, OptimizerFactory optimizer, TrainerOptions options)
    : model_(std::move(model)), options_(std::move(options)), device_(options_.device) {
  if (!model_) fail("Trainer: expected a model, got a null pointer");
  if (!optimizer) fail("Trainer: expected an optimizer factory, got an empty function");
  check_options(options_);
  model_->to(device_);
  if (!options_.init_from.empty()) load_weights(*model_, options_.init_from);
  const DType own_dtype = model_dtype(*model_);
  compute_dtype_ = options_.precision.value_or(own_dtype);
  const bool mixed = compute_dtype_ != own_dtype;
  if (mixed && !(own_dtype == kFloat32 && is_half(compute_dtype_))) {
    fail("Trainer: precision ", dtype_name(compute_dtype_), " for a ", dtype_name(own_dtype), " model: expected the ",
         "model's own dtype, or bfloat16 / float16 over a float32 model (mixed precision)");
  }

  dist::RunSettings settings{{"data_parallel", data_parallel_name(options_.data_parallel)},
                             {"zero_stage", std::to_string(options_.zero_stage)},
                             {"precision", dtype_name(compute_dtype_)},
                             {"grad_accum", std::to_string(options_.grad_accum)},
                             {"grad_clip", setting_text(options_.grad_clip)},
                             {"communication", options_.communication},
                             {"communication_start_step", std::to_string(options_.communication_start_step)}};
  settings.insert(settings.end(), options_.settings.begin(), options_.settings.end());

  if (options_.data_parallel == DataParallel::None) {
    optimizer_ = optimizer(model_->parameters());
    return;
  }
  if (options_.data_parallel == DataParallel::DDP && !mixed) {
    ddp_ = std::make_unique<dist::DistributedDataParallel>(
        model_, dist::DistributedDataParallelOptions{.settings = std::move(settings)});
    optimizer_ = optimizer(model_->parameters());
    if (options_.communication != kExactCommunication) {
      communication_ =
          std::make_unique<TrainerCommunication>(options_.communication, options_.communication_start_step, *ddp_);
    }
    return;
  }
  // ZeRO (DDP in mixed precision: stage 0). The optimizer runs over this rank's pieces of the
  // masters, all in one group.
  dist::OptimizerFactory factory = [optimizer](std::vector<std::vector<Tensor>> groups) {
    std::vector<Tensor> pieces;
    for (auto& group : groups) pieces.insert(pieces.end(), group.begin(), group.end());
    return optimizer(std::move(pieces));
  };
  const int stage = options_.data_parallel == DataParallel::Zero ? options_.zero_stage : 0;
  dist::ZeroOptions zero_options{.stage = stage, .settings = std::move(settings)};
  if (mixed) zero_options.compute_dtype = compute_dtype_;
  zero_ = std::make_unique<dist::ZeroOptimizer>(model_, std::move(factory), zero_options);
}

Trainer::~Trainer() = default;

Tensor Trainer::operator()(const Tensor& input) {
  const Tensor on_device = input.device() == device_ ? input : input.to(device_);
  if (!zero_) {
    // Without autograd (evaluation, sampling) DDP has nothing to synchronise: the module alone,
    // so that rank 0 can evaluate while the others wait.
    if (!ddp_ || !grad_mode_enabled()) return (*model_)(on_device);
    if (gradient_sync_) return (*ddp_)(on_device);
    auto no_sync = ddp_->no_sync();
    return (*ddp_)(on_device);
  }
  const bool cast = is_floating(on_device.dtype()) && on_device.dtype() != compute_dtype_;
  Tensor output = (*zero_)(cast ? on_device.to(compute_dtype_) : on_device);
  return is_half(output.dtype()) ? output.to(kFloat32) : output;
}

void Trainer::zero_grad() {
  if (zero_) {
    zero_->zero_grad();
  } else {
    optimizer_->zero_grad();
  }
}

void Trainer::backward(const Tensor& loss) {
  if (zero_) {
    zero_->backward(loss);
  } else {
    loss.backward();
  }
}

double Trainer::clip_grad_norm(double max_norm) {
  if (zero_) return zero_->clip_grad_norm(max_norm);
  return optim::clip_grad_norm(model_->parameters(), max_norm);
}

bool Trainer::optimizer_step() {
  if (zero_) return zero_->step();
  optimizer_->step();
  return true;
}

void Trainer::set_lr(double lr) {
  if (zero_) {
    zero_->set_lr(lr);
  } else {
    optimizer_->set_lr(lr);
  }
}

double Trainer::lr() const { return zero_ ? zero_->lr() : optimizer_->lr(); }

StepReport Trainer::step(const std::function<Tensor(int64_t)>& micro_batch_loss) {
  if (options_.schedule) set_lr(options_.schedule(step_));
  StepReport report{.lr = lr()};
  const int64_t bytes_before = dist::communication_volume().payload_bytes;
  zero_grad();
  const int64_t micro_batches = options_.grad_accum;
  // Local steps (local SGD, gossip) all-reduce nothing in backward.
  const bool synchronized = !communication_ || communication_->synchronizes_gradients(step_);
  double loss_sum = 0;
  for (int64_t i = 0; i < micro_batches; ++i) {
    // DDP all-reduces only the last micro-batch's backward, which adds the accumulated gradients.
    gradient_sync_ = synchronized && i + 1 == micro_batches;
    Tensor loss;
    try {
      loss = micro_batch_loss(i);
    } catch (...) {
      gradient_sync_ = true;
      throw;
    }
    gradient_sync_ = true;
    backward(micro_batches == 1 ? loss : loss / static_cast<double>(micro_batches));
    loss_sum += loss.item();
  }
  if (options_.grad_clip > 0) clip_grad_norm(options_.grad_clip);
  report.applied = optimizer_step();
  report.step = ++step_;
  if (communication_) communication_->after_step(step_);
  report.loss = loss_sum / static_cast<double>(micro_batches);
  report.communication_bytes = dist::communication_volume().payload_bytes - bytes_before;
  return report;
}

bool Trainer::checkpoint_due(int64_t last_step) const {
  return !options_.checkpoint.empty() &&
         (step_ == last_step || (options_.checkpoint_every > 0 && step_ % options_.checkpoint_every == 0));
}

void Trainer::fit(DataLoader& loader, int64_t last_step, const std::function<Tensor(const Batch&)>& loss) {
  while (step_ < last_step) {
    StepReport report = step([&](int64_t) { return loss(loader.next()); });
    if (options_.on_step) options_.on_step(report);
    if (!checkpoint_due(last_step)) continue;
    save_checkpoint(options_.checkpoint, loader);
    if (options_.on_checkpoint) {
      const bool rotated = options_.keep_checkpoints > 0;
      options_.on_checkpoint(rotated ? rotated_checkpoint_dir(options_.checkpoint, step_).string() : options_.checkpoint,
                             step_);
    }
  }
}

void Trainer::save(const std::string& path, const TrainingState& state, bool as_directory) {
  if (zero_) {
    dist::save_sharded_checkpoint(path, zero_->state_fragments(), state, &dist::world());
  } else if (as_directory || std::filesystem::is_directory(path)) {
    if (!dist::is_initialized()) fail("Trainer: a sharded checkpoint directory (", path, ") needs dist::init()");
    dist::save_whole_state(path, *model_, *optimizer_, state, &dist::world());
  } else if (rank_or_zero() == 0) {
    train::save_checkpoint(path, *model_, *optimizer_, state);
  }
  if (communication_ && communication_->has_rank_state()) {
    // Each rank's own part beside the checkpoint; returns on every rank once all are written.
    dist::world().barrier()->wait();  // a single file is rank 0's: it exists before the parts
    communication_->save_rank_state(path, state.step, *model_, *optimizer_);
    dist::world().barrier()->wait();
  }
}

TrainingState Trainer::load(const std::string& path) {
  if (!std::filesystem::is_directory(path)) {
    if (zero_) {
      fail("resuming ", path, ": a ZeRO run resumes from a sharded checkpoint directory (one that a ZeRO run or a ",
           "mixed-precision run wrote, or dist::save_whole_state), not a single file");
    }
    TrainingState state = load_checkpoint(path, *model_, *optimizer_);
    if (communication_) communication_->load_rank_state(path, state.step, *model_, *optimizer_);
    return state;
  }
  if (!dist::is_initialized()) fail("Trainer: loading a sharded checkpoint directory (", path, ") needs dist::init()");
  auto checkpoint = dist::ShardedCheckpoint::open(path, &dist::world());
  if (zero_) {
    zero_->load_state_fragments(checkpoint);
  } else {
    dist::load_whole_state(checkpoint, *model_, *optimizer_, &dist::world());
  }
  TrainingState state = checkpoint.training_state();
  if (communication_) communication_->load_rank_state(path, state.step, *model_, *optimizer_);
  // Saved at another world size, every rank got rank 0's loader position, counted in batches of
  // that world size: continue at the same fraction of the epoch (README, "Sharded checkpoints").
  if (checkpoint.saved_world_size() != dist::world_size()) {
    for (auto& [name, loader] : state.loaders) {
      loader.batch = loader.batch * checkpoint.saved_world_size() / dist::world_size();
    }
  }
  return state;
}

void Trainer::save_checkpoint(const std::string& path, const DataLoader& loader) {
  TrainingState state{.step = step_,
                      .generators = {{"default", generator_state()}},
                      .loaders = {{"train", loader.state()}},
                      .metadata = options_.checkpoint_metadata};
  if (options_.keep_checkpoints == 0) {
    save(path, state);
    return;
  }
  // The save returns on every rank once the new directory is complete; only then go the old ones.
  save(rotated_checkpoint_dir(path, step_).string(), state, true);
  if (rank_or_zero() == 0) remove_old_rotated_checkpoints(path, options_.keep_checkpoints);
}

TrainingState Trainer::resume(const std::string& path, DataLoader& loader) {
  TrainingState state = load(resolve_checkpoint_path(path));
  restore_generator(state.generator("default"));
  loader.set_state(state.loader("train"));
  step_ = state.step;
  return state;
}

StateDict Trainer::full_parameters() const {
  if (zero_) return zero_->full_parameters();
  StateDict parameters;
  for (const auto& [name, parameter] : model_->named_parameters()) parameters.insert(name, parameter);
  return parameters;
}

bool Trainer::forward_is_collective() const { return zero_ && zero_->stage() == 3; }

std::string Trainer::description() const {
  if (ddp_ && communication_) return "DDP, " + precision_text(compute_dtype_) + ", " + communication_->description();
  if (ddp_) return "DDP, " + precision_text(compute_dtype_);
  if (!zero_) return "no data parallelism, " + precision_text(compute_dtype_);
  return "ZeRO stage " + std::to_string(zero_->stage()) + ", " + precision_text(compute_dtype_) +
         (is_half(compute_dtype_) ? " compute, fp32 masters" : "");
}

std::string Trainer::optimizer_name() const { return zero_ ? zero_->optimizer().name() : optimizer_->name(); }

std::string Trainer::memory_line() const {
  if (zero_) return zero_->memory_report().str();
  MemoryStats stats = memory_stats();
  auto counter = [&](MemoryTag tag) {
    return mebibytes(stats[tag].current) + " (peak " + mebibytes(stats[tag].peak) + ")";
  };
  const std::string who = ddp_ ? "ddp rank " + std::to_string(dist::rank()) + "/" + std::to_string(dist::world_size())
                               : std::string("single process");
  return who + ": params " + counter(MemoryTag::Parameters) + ", grads " + counter(MemoryTag::Gradients) +
         ", optimizer " + counter(MemoryTag::OptimizerState) + ", comm " + counter(MemoryTag::Communication);
}

}  // namespace dtrain::train
