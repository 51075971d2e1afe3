// One naming across the three files that hold training state: a single-file checkpoint
// (train/checkpoint.h), a sharded one (saved by every rank of the job) and a consolidated one hold
// the same keys with the same values, and each converts into the others without a change.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "tests/dist/test_sharded_checkpoint_support.h"
#include "train/checkpoint.h"
#include "train/load_weights.h"
#include "train/checkpoint_metadata.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;

namespace {

constexpr int64_t kSteps = 3;

struct Trained {
  std::shared_ptr<Module> model;
  std::unique_ptr<optim::AdamW> optimizer;
};

Trained trained(uint64_t seed, int64_t steps) {
  Trained run{make_mlp(seed), nullptr};
  run.optimizer = make_adamw(*run.model);
  for (int64_t step = 0; step < steps; ++step) train_step(*run.model, *run.optimizer, step);
  return run;
}

std::set<std::string> keys_of(const std::map<std::string, Tensor>& tensors) {
  std::set<std::string> keys;
  for (const auto& [name, tensor] : tensors) keys.insert(name);
  return keys;
}

// Every key of expected is in actual with the same bytes, and nothing else is.
void require_same_tensors(const std::map<std::string, Tensor>& expected, const std::map<std::string, Tensor>& actual) {
  REQUIRE(keys_of(actual) == keys_of(expected));
  for (const auto& [name, tensor] : expected) {
    INFO(name);
    CHECK(same_bytes(actual.at(name), tensor));
  }
}

std::map<std::string, Tensor> read_all(const ShardedCheckpoint& checkpoint) {
  std::map<std::string, Tensor> tensors;
  for (const std::string& name : checkpoint.names()) tensors.emplace(name, checkpoint.read(name));
  return tensors;
}

}  // namespace

TEST_CASE("single-file, sharded and consolidated files key the same state the same way, with the same values",
          "[sharded_checkpoint]") {
  const Trained run = trained(1, kSteps);
  const train::TrainingState state{.step = kSteps, .generators = {{"default", {5, 640}}}};
  SharedDirectory dir;
  save_whole_state(dir / "sharded", *run.model, *run.optimizer, state, &world());
  if (world().rank() != 0) return;

  train::save_checkpoint(dir / "single.safetensors", *run.model, *run.optimizer, state);
  consolidate_checkpoint(dir / "sharded", dir / "all.safetensors", {.all_tensors = true});
  consolidate_checkpoint(dir / "sharded", dir / "weights.safetensors");
  const std::map<std::string, Tensor> single = load_safetensors(dir / "single.safetensors").tensors;

  // The names, built here from the model and the optimizer's groups (make_adamw puts weights
  // before biases, so the optimizer's index order is not the model's).
  std::vector<std::string> by_index;
  for (const char* kind : {"weight", "bias"}) {
    for (const auto& [name, parameter] : run.model->named_parameters()) {
      if (name.find(kind) != std::string::npos) by_index.push_back(name);
    }
  }
  REQUIRE(by_index.size() == run.optimizer->num_parameters());
  for (size_t i = 0; i < by_index.size(); ++i) {
    INFO("parameter " << i << " " << by_index[i]);
    for (const char* state_name : {"exp_avg", "exp_avg_sq"}) {
      CHECK(same_bytes(single.at("optimizer.state." + by_index[i] + "." + state_name),
                       run.optimizer->state(i).tensors.at(state_name)));
    }
    CHECK(single.at("optimizer.state." + by_index[i] + ".step").item<int64_t>() == kSteps);
  }
  for (const auto& [name, tensor] : run.model->state_dict()) CHECK(same_bytes(single.at("model." + name), tensor));

  // Sharded (whatever the world size) and consolidated: the same keys and bytes.
  require_same_tensors(single, read_all(ShardedCheckpoint::open(dir / "sharded")));
  require_same_tensors(single, load_safetensors(dir / "all.safetensors").tensors);
  std::map<std::string, Tensor> model_part;
  for (const auto& [name, tensor] : single) {
    if (name.rfind("model.", 0) == 0) model_part.emplace(name, tensor);
  }
  require_same_tensors(model_part, load_safetensors(dir / "weights.safetensors").tensors);
}

TEST_CASE("single-file -> sharded -> single-file and consolidated -> model round trips change nothing",
          "[sharded_checkpoint]") {
  const Trained run = trained(2, kSteps);
  const train::TrainingState state{.step = kSteps, .metadata = {{"run", "round trip"}}};
  SharedDirectory dir;
  if (world().rank() == 0) train::save_checkpoint(dir / "single.safetensors", *run.model, *run.optimizer, state);
  world().barrier()->wait();

  // Single file -> every rank loads it -> a sharded checkpoint saved by all ranks.
  Trained loaded{make_mlp(50), nullptr};
  loaded.optimizer = make_adamw(*loaded.model);
  const train::TrainingState loaded_state = train::load_checkpoint(dir / "single.safetensors", *loaded.model,
                                                                   *loaded.optimizer);
  CHECK(same_parameters(*loaded.model, *run.model));
  CHECK(same_optimizer_state(*loaded.optimizer, *run.optimizer));
  save_whole_state(dir / "sharded", *loaded.model, *loaded.optimizer, loaded_state, &world());

  // Sharded -> a model and optimizer on every rank, equal to the run's.
  Trained resharded{make_mlp(51), nullptr};
  resharded.optimizer = make_adamw(*resharded.model);
  load_whole_state(ShardedCheckpoint::open(dir / "sharded", &world()), *resharded.model, *resharded.optimizer,
                   &world());
  CHECK(same_parameters(*resharded.model, *run.model));
  CHECK(same_optimizer_state(*resharded.optimizer, *run.optimizer));
  if (world().rank() != 0) return;

  // Sharded -> single file again (consolidate_training_checkpoint): the same file contents.
  Trained through{make_mlp(52), nullptr};
  through.optimizer = make_adamw(*through.model);
  consolidate_training_checkpoint(dir / "sharded", dir / "again.safetensors", *through.model, *through.optimizer);
  const SafetensorsFile first = load_safetensors(dir / "single.safetensors");
  const SafetensorsFile again = load_safetensors(dir / "again.safetensors");
  require_same_tensors(first.tensors, again.tensors);
  CHECK(again.metadata.at("format") == first.metadata.at("format"));
  CHECK(again.metadata.at("user.run") == "round trip");

  // Consolidated weights -> a model.
  consolidate_checkpoint(dir / "sharded", dir / "weights.safetensors");
  std::shared_ptr<Module> from_weights = make_mlp(53);
  train::load_weights(*from_weights, dir / "weights.safetensors");
  CHECK(same_parameters(*from_weights, *run.model));
}

TEST_CASE("files of the older namings still load with the same values", "[sharded_checkpoint]") {
  const Trained run = trained(3, kSteps);
  SharedDirectory dir;
  if (world().rank() != 0) return;

  // A single-file checkpoint as format v1 wrote it: the optimizer's state dict keys, by index.
  std::map<std::string, Tensor> old_checkpoint;
  for (const auto& [name, tensor] : run.model->state_dict()) old_checkpoint["model." + name] = tensor;
  for (const auto& [key, tensor] : run.optimizer->state_dict()) old_checkpoint["optimizer." + key] = tensor;
  std::map<std::string, std::string> metadata = train::encode_checkpoint_metadata({.step = kSteps}, "AdamW");
  metadata["format"] = "dtrain.checkpoint.v1";
  save_safetensors(dir / "v1.safetensors", old_checkpoint, metadata);
  Trained loaded{make_mlp(60), nullptr};
  loaded.optimizer = make_adamw(*loaded.model);
  CHECK(train::load_checkpoint(dir / "v1.safetensors", *loaded.model, *loaded.optimizer).step == kSteps);
  CHECK(same_parameters(*loaded.model, *run.model));
  CHECK(same_optimizer_state(*loaded.optimizer, *run.optimizer));

  // A consolidated file as dtrain-consolidate wrote it before: the weights under bare names.
  save_safetensors(dir / "bare.safetensors", run.model->state_dict().to_map());
  std::shared_ptr<Module> from_bare = make_mlp(61);
  train::load_weights(*from_bare, dir / "bare.safetensors");
  CHECK(same_parameters(*from_bare, *run.model));
}
