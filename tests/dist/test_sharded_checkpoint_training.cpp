// A plain model and AdamW in sharded checkpoints: saved by N ranks (DDP-style, every rank holding
// the same whole tensors, each writing its part) and by a ZeRO-style layout that cuts the flat
// parameter buffer anywhere, loaded at M ranks or by one process, continue bitwise like the run
// that never stopped; consolidation into one file (the API, dtrain-consolidate, and a full
// train/checkpoint.h training checkpoint) gives back the model's exact values.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/safetensors.h"
#include "tests/dist/test_sharded_checkpoint_support.h"
#include "tests/examples/run_program.h"
#include "train/checkpoint.h"
#include "train/load_weights.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;
using Catch::Matchers::Contains;

namespace {

constexpr int64_t kStepsBefore = 3;  // trained before the checkpoint
constexpr int64_t kStepsAfter = 3;   // and after it

struct Trained {
  std::shared_ptr<Module> model;
  std::unique_ptr<optim::AdamW> optimizer;
};

Trained train_mlp(int64_t steps, uint64_t seed = 1) {
  Trained run{make_mlp(seed), nullptr};
  run.optimizer = make_adamw(*run.model);
  for (int64_t step = 0; step < steps; ++step) train_step(*run.model, *run.optimizer, step);
  return run;
}

// The fragments ZeRO's rank `rank` of n would hold: the parameters flattened one after another
// into one buffer cut into n near-equal runs (cuts fall inside tensors), the same cuts for each
// per-parameter state tensor; step counts and param groups from rank 0.
std::vector<TensorFragment> zero_style_fragments(const Module& model, const optim::Optimizer& optimizer, int rank,
                                                 int n) {
  std::map<std::string, std::pair<int64_t, int64_t>> flat_range;  // parameter name -> [offset, offset + numel)
  int64_t total = 0;
  for (const auto& [name, parameter] : model.named_parameters()) {
    flat_range[name] = {total, total + parameter.numel()};
    total += parameter.numel();
  }
  const int64_t low = total * rank / n;
  const int64_t high = total * (rank + 1) / n;
  std::vector<TensorFragment> fragments;
  // What a float16 ZeRO run saves besides: not the model's nor the optimizer's, left alone on load.
  if (rank == 0) fragments.push_back({"loss_scaler.scale", Shape{}, 0, from_vector(std::vector<float>{65536.0f})});
  for (const TensorFragment& whole : whole_state_fragments(model, optimizer)) {
    std::string parameter;
    if (whole.name.rfind("model.", 0) == 0) {
      parameter = whole.name.substr(6);
    } else if (whole.name.rfind("optimizer.state.", 0) == 0 && whole.name.substr(whole.name.rfind('.')) != ".step") {
      parameter = whole.name.substr(16, whole.name.rfind('.') - 16);
    }
    if (parameter.empty()) {
      if (rank == 0) fragments.push_back(whole);  // replicated: one rank saves it
      continue;
    }
    const auto [offset, end] = flat_range.at(parameter);
    const int64_t begin = std::max(low, offset) - offset;
    const int64_t stop = std::min(high, end) - offset;
    if (begin < stop) fragments.push_back({whole.name, whole.shape, begin, whole.data.narrow(0, begin, stop - begin)});
  }
  return fragments;
}

// Loads dir into a fresh model and optimizer at `readers` ranks (0: every rank alone, without a
// group), checks they equal `trained`, trains on and compares with the uninterrupted run.
void check_resume(const std::filesystem::path& dir, const Trained& trained, const Trained& uninterrupted,
                  ProcessGroup* reading) {
  Trained resumed{make_mlp(99), nullptr};  // another initialisation: the load must replace it all
  resumed.optimizer = make_adamw(*resumed.model);
  ShardedCheckpoint checkpoint = ShardedCheckpoint::open(dir, reading);
  load_whole_state(checkpoint, *resumed.model, *resumed.optimizer, reading);
  CHECK(same_parameters(*resumed.model, *trained.model));
  CHECK(same_optimizer_state(*resumed.optimizer, *trained.optimizer));
  CHECK(checkpoint.training_state().step == kStepsBefore);
  for (int64_t step = kStepsBefore; step < kStepsBefore + kStepsAfter; ++step) {
    train_step(*resumed.model, *resumed.optimizer, step);
  }
  CHECK(same_parameters(*resumed.model, *uninterrupted.model));
  CHECK(same_optimizer_state(*resumed.optimizer, *uninterrupted.optimizer));
}

}  // namespace

TEST_CASE("A model and AdamW saved at N ranks resume at M ranks bitwise like the uninterrupted run",
          "[sharded_checkpoint]") {
  const Trained uninterrupted = train_mlp(kStepsBefore + kStepsAfter);
  const Trained trained = train_mlp(kStepsBefore);
  REQUIRE_FALSE(same_parameters(*trained.model, *uninterrupted.model));
  auto groups = first_ranks_groups();
  const int world_size = world().size();
  for (const bool zero_style : {false, true}) {
    for (int saved = 1; saved <= world_size; ++saved) {
      SharedDirectory dir;
      if (ProcessGroup* saving = groups[static_cast<size_t>(saved)].get()) {
        const train::TrainingState state{.step = kStepsBefore};
        if (zero_style) {
          save_sharded_checkpoint(dir.path(),
                                  zero_style_fragments(*trained.model, *trained.optimizer, saving->rank(), saved),
                                  state, saving);
        } else {
          save_whole_state(dir.path(), *trained.model, *trained.optimizer, state, saving);
        }
      }
      world().barrier()->wait();
      for (int readers = 0; readers <= world_size; ++readers) {
        ProcessGroup* reading = readers == 0 ? nullptr : groups[static_cast<size_t>(readers)].get();
        if (readers > 0 && reading == nullptr) continue;
        INFO((zero_style ? "ZeRO-style" : "whole-tensor")
             << " checkpoint saved by " << saved << " ranks, loaded by "
             << (readers == 0 ? std::string("each rank alone") : std::to_string(readers) + " ranks"));
        check_resume(dir.path(), trained, uninterrupted, reading);
        if (zero_style) CHECK(ShardedCheckpoint::open(dir.path()).read("loss_scaler.scale").item() == 65536.0);
      }
      world().barrier()->wait();
    }
  }
}

TEST_CASE("A sharded checkpoint loads into a model of another floating dtype, converting", "[sharded_checkpoint]") {
  const Trained trained = train_mlp(kStepsBefore);
  SharedDirectory dir;
  save_whole_state(dir.path(), *trained.model, *trained.optimizer, {.step = kStepsBefore}, &world());
  std::shared_ptr<Module> model = make_mlp(99);
  model->to(kFloat64);
  auto optimizer = make_adamw(*model);
  load_whole_state(ShardedCheckpoint::open(dir.path(), &world()), *model, *optimizer, &world());
  auto loaded = model->state_dict();
  for (const auto& [name, tensor] : trained.model->state_dict()) {
    INFO(name);
    CHECK(same_bytes(loaded.at(name), tensor.to(kFloat64)));  // float32 -> float64 is exact
  }
  CHECK(same_bytes(optimizer->state(0).tensors.at("exp_avg"),
                   trained.optimizer->state(0).tensors.at("exp_avg").to(kFloat64)));
}

TEST_CASE("Consolidation writes one file a single process loads: weights, every tensor, or a training checkpoint",
          "[sharded_checkpoint]") {
  const Trained trained = train_mlp(kStepsBefore);
  SharedDirectory dir;
  const std::filesystem::path checkpoint_dir = dir / "step-3";
  save_whole_state(checkpoint_dir, *trained.model, *trained.optimizer,
                   {.step = kStepsBefore, .generators = {{"default", {5, 640}}}, .metadata = {{"run", "test"}}},
                   &world());
  if (world().rank() != 0) return;

  // The weights, under their checkpoint names ("model.<name>").
  ConsolidateSummary summary = consolidate_checkpoint(checkpoint_dir, dir / "model.safetensors");
  CHECK(summary.step == kStepsBefore);
  CHECK(summary.saved_world_size == world().size());
  CHECK(summary.tensors == 6);  // three Linear layers
  SafetensorsFile weights = load_safetensors(dir / "model.safetensors");
  CHECK(weights.metadata.at("step") == std::to_string(kStepsBefore));
  CHECK(weights.tensors.size() == 6);
  CHECK(weights.tensors.count("model.0.weight") == 1);
  std::shared_ptr<Module> single = make_mlp(99);
  train::load_weights(*single, dir / "model.safetensors");
  CHECK(same_parameters(*single, *trained.model));

  // Every tensor, under its checkpoint name.
  consolidate_checkpoint(checkpoint_dir, dir / "all.safetensors", {.all_tensors = true, .verify = true});
  SafetensorsFile all = load_safetensors(dir / "all.safetensors");
  CHECK(all.tensors.size() == ShardedCheckpoint::open(checkpoint_dir).names().size());
  CHECK(same_bytes(all.tensors.at("optimizer.state.2.weight.exp_avg_sq"),
                   trained.optimizer->state(1).tensors.at("exp_avg_sq")));
  CHECK(all.tensors.at("optimizer.state.4.bias.step").item<int64_t>() == kStepsBefore);

  // A train/checkpoint.h training checkpoint: model, optimizer, the training state.
  Trained through{make_mlp(98), nullptr};
  through.optimizer = make_adamw(*through.model);
  consolidate_training_checkpoint(checkpoint_dir, dir / "training.safetensors", *through.model, *through.optimizer);
  Trained loaded{make_mlp(97), nullptr};
  loaded.optimizer = make_adamw(*loaded.model);
  train::TrainingState state = train::load_checkpoint(dir / "training.safetensors", *loaded.model, *loaded.optimizer);
  CHECK(same_parameters(*loaded.model, *trained.model));
  CHECK(same_optimizer_state(*loaded.optimizer, *trained.optimizer));
  CHECK(state.step == kStepsBefore);
  CHECK(state.generator("default") == train::GeneratorState{5, 640});
  CHECK(state.metadata.at("run") == "test");

#ifdef DTRAIN_CONSOLIDATE_PROGRAM
  // The command, where forking is safe (not under mpirun).
  if (!uses_mpi()) {
    using examples::testing::run_program;
    auto result =
        run_program(DTRAIN_CONSOLIDATE_PROGRAM, {checkpoint_dir.string(), (dir / "cli.safetensors").string()});
    CHECK(result.exit_code == 0);
    CHECK_THAT(result.out, Contains("wrote 6 tensors") && Contains("of step 3"));
    std::shared_ptr<Module> from_command = make_mlp(96);
    train::load_weights(*from_command, dir / "cli.safetensors");
    CHECK(same_parameters(*from_command, *trained.model));

    auto refused = run_program(DTRAIN_CONSOLIDATE_PROGRAM, {dir.path().string(), (dir / "none.safetensors").string()});
    CHECK(refused.exit_code == 1);
    CHECK_THAT(refused.err, Contains("index.json") && Contains("does not exist"));
    CHECK_FALSE(std::filesystem::exists(dir / "none.safetensors"));
    CHECK(run_program(DTRAIN_CONSOLIDATE_PROGRAM, {checkpoint_dir.string()}).exit_code == 2);
  }
#endif
}
