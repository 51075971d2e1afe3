#include "examples/common/run_flags.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include "core/parallel.h"
#include "tools/command_line/program_exit.h"
#include "train/trainer_checkpoint_source.h"

namespace dtrain::examples {

void RunFlags::add_to(FlagParser& flags) {
  flags.add("seed", seed, "random seed: initialisation, data order, dropout");
  flags.add("threads", threads, "CPU threads (0: all cores)");
  flags.add("checkpoint", checkpoint, "save a training checkpoint (safetensors) to this file");
  flags.add("checkpoint-every", checkpoint_every, "steps between checkpoints (0: only at the end)");
  flags.add("keep-checkpoints", keep_checkpoints,
            "keep the newest K checkpoints, each a directory --checkpoint/step-<N> (0: one, replaced by each save)");
  flags.add("resume", resume, "continue training from this checkpoint");
  flags.add("init-from", init_from,
            "start from these weights only (safetensors: a consolidated checkpoint, a PyTorch state_dict)");
  flags.add("stop-after", stop_after, "stop after this step, as if interrupted (0: run to the end)");
  flags.add("metrics", metrics, "append metrics as JSON lines to this file");
  flags.add("log-every", log_every, "steps per metrics record and per progress line in a log");
}

void RunFlags::check_and_apply() const {
  if (threads < 0) usage_error("--threads must be >= 0, got ", threads);
  if (checkpoint_every < 0) usage_error("--checkpoint-every must be >= 0, got ", checkpoint_every);
  if (keep_checkpoints < 0) usage_error("--keep-checkpoints must be >= 0, got ", keep_checkpoints);
  if (log_every < 1) usage_error("--log-every must be >= 1, got ", log_every);
  if (stop_after < 0) usage_error("--stop-after must be >= 0, got ", stop_after);
  if (!init_from.empty() && !resume.empty()) {
    usage_error("--init-from starts a new run from weights and --resume continues one: give only one");
  }
  if (!init_from.empty() && !std::filesystem::is_regular_file(init_from)) {
    usage_error("--init-from ", init_from, ": no such file (expected a safetensors file of weights)");
  }
  if (threads > 0) set_num_threads(static_cast<int>(threads));
}

int64_t RunFlags::last_step(int64_t total_steps) const {
  return stop_after > 0 && stop_after < total_steps ? stop_after : total_steps;
}

void add_optimizer_flags(FlagParser& flags, train::OptimizerChoice& choice) {
  flags.add_choice("optimizer", choice.name, train::kOptimizerNames, "adamw, adam or sgd");
  flags.add("lr", choice.lr, "peak learning rate");
  flags.add("weight-decay", choice.weight_decay, "weight decay (decoupled for adamw)");
  flags.add("momentum", choice.momentum, "momentum (sgd)");
}

void check_optimizer_flags(const train::OptimizerChoice& choice) {
  if (!(choice.lr > 0 && std::isfinite(choice.lr))) usage_error("--lr must be > 0, got ", choice.lr);
  if (!(choice.weight_decay >= 0)) usage_error("--weight-decay must be >= 0, got ", choice.weight_decay);
  if (!(choice.momentum >= 0 && choice.momentum < 1)) usage_error("--momentum must be in [0, 1), got ", choice.momentum);
}

dist::RunSettings optimizer_settings(const train::OptimizerChoice& choice) {
  return {{"optimizer", choice.name},
          {"lr", setting_text(choice.lr)},
          {"weight_decay", setting_text(choice.weight_decay)},
          {"momentum", setting_text(choice.momentum)}};
}

void RunFlags::apply_to(train::TrainerOptions& options) const {
  options.checkpoint = checkpoint;
  options.checkpoint_every = checkpoint_every;
  options.keep_checkpoints = keep_checkpoints;
  options.init_from = init_from;
}

void RunFlags::start(train::Trainer& trainer, DataLoader& loader) const {
  if (!resume.empty()) {
    const std::string from = train::resolve_checkpoint_path(resume);
    train::TrainingState state = read_input([&] { return trainer.resume(from, loader); });
    std::printf("resumed from %s at step %lld%s\n", from.c_str(), static_cast<long long>(state.step),
                state.verified ? "" : " (the file carries no checksums: its data could not be verified)");
  } else if (!init_from.empty()) {
    std::printf("initialised from %s (weights only)\n", init_from.c_str());
  }
}

bool RunFlags::checkpoint_due(int64_t step, int64_t last_step) const {
  return !checkpoint.empty() && (step == last_step || (checkpoint_every > 0 && step % checkpoint_every == 0));
}

dist::RunSettings RunFlags::settings() const {
  return {{"seed", std::to_string(seed)},
          {"checkpoint", checkpoint},
          {"checkpoint_every", std::to_string(checkpoint_every)},
          {"keep_checkpoints", std::to_string(keep_checkpoints)},
          {"resume", resume},
          {"init_from", init_from},
          {"stop_after", std::to_string(stop_after)}};
}

}  // namespace dtrain::examples
