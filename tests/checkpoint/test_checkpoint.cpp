// Training checkpoints: what the file holds, exact restores, bitwise resume within a process
// (tests/examples covers resuming in a new process), and every refusal leaving the model and
// the optimizer untouched.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dtrain.h"
#include "tests/checkpoint/checkpoint_test_support.h"
#include "tests/support/velocity_optimizer.h"

using namespace dtrain;
using namespace dtrain::train;
using namespace dtrain::train::testing;
using Catch::Contains;

namespace {

// A copy of every tensor the model and optimizer hold, to check that nothing changed.
struct Snapshot {
  std::map<std::string, Tensor> tensors;

  Snapshot(const Module& model, const optim::Optimizer& optimizer) {
    for (const auto& [name, tensor] : model.state_dict()) tensors["model." + name] = tensor.clone();
    for (const auto& [key, tensor] : optimizer.state_dict()) tensors["optimizer." + key] = tensor;
  }
};

void require_same(const Snapshot& expected, const Snapshot& actual) {
  REQUIRE(expected.tensors.size() == actual.tensors.size());
  for (const auto& [name, tensor] : expected.tensors) {
    INFO("tensor " << name);
    REQUIRE(actual.tensors.count(name) == 1);
    CHECK(same_bytes(tensor, actual.tensors.at(name)));
  }
}

// A model, its AdamW and a loader, after `steps` training steps from seed.
struct Run {
  std::shared_ptr<Sequential> model;
  optim::AdamW optimizer;
  DataLoader loader;

  Run(uint64_t seed, int steps, int64_t hidden = 8)
      : model((manual_seed(seed), small_model(hidden))),
        optimizer(model->parameters(), {.lr = 0.01, .weight_decay = 0.1}),
        loader(small_dataset(), {.batch_size = 16, .shuffle = true, .seed = 7}) {
    for (int i = 0; i < steps; ++i) train_step(*model, optimizer, loader);
  }

  TrainingState state(int64_t step) const {
    return {.step = step,
            .generators = {{"default", generator_state()}},
            .loaders = {{"train", loader.state()}},
            .metadata = {{"note", "a test run"}}};
  }
};

}  // namespace

TEST_CASE("a checkpoint is one safetensors file: model.*, optimizer.* and the state as metadata") {
  ScratchDirectory directory;
  Run run(1, 3);
  save_checkpoint(directory / "run.safetensors", *run.model, run.optimizer, run.state(3));

  std::vector<std::filesystem::path> files(std::filesystem::directory_iterator(directory.path()), {});
  CHECK(files.size() == 1);  // no temporary file left behind

  SafetensorsFile file = load_safetensors(directory / "run.safetensors");
  // Optimizer state under the parameter's name (the optimizer's parameter 3 is the model's
  // "3.bias"), as sharded and consolidated files name it; no key by index.
  for (const char* name : {"model.0.weight", "model.0.bias", "model.3.weight", "model.3.bias",
                           "optimizer.param_groups.0.lr", "optimizer.param_groups.0.params",
                           "optimizer.state.0.weight.exp_avg", "optimizer.state.3.bias.exp_avg_sq",
                           "optimizer.state.0.weight.step"}) {
    INFO("tensor " << name);
    CHECK(file.tensors.count(name) == 1);
  }
  CHECK(file.tensors.size() == run.model->state_dict().size() + run.optimizer.state_dict().size());
  CHECK(file.tensors.count("optimizer.state.0.exp_avg") == 0);
  CHECK(same_bytes(file.tensors.at("model.0.weight"), run.model->state_dict().at("0.weight")));
  CHECK(same_bytes(file.tensors.at("optimizer.state.3.bias.exp_avg_sq"),
                   run.optimizer.state(3).tensors.at("exp_avg_sq")));
  CHECK(file.tensors.at("optimizer.state.0.weight.step").item<int64_t>() == 3);
  CHECK(file.metadata.at("format") == "dtrain.checkpoint.v2");
  CHECK(file.metadata.at("optimizer") == "AdamW");
  CHECK(file.metadata.at("step") == "3");
  CHECK(file.metadata.at("generator.default.seed") == "1");
  CHECK(file.metadata.at("generator.default.offset") == std::to_string(default_generator().offset()));
  CHECK(file.metadata.at("loader.train.seed") == "7");
  CHECK(file.metadata.at("loader.train.epoch") == "0");
  CHECK(file.metadata.at("loader.train.batch") == "3");
  CHECK(file.metadata.at("user.note") == "a test run");
}

TEST_CASE("load_checkpoint restores the model, the optimizer and the training state exactly") {
  ScratchDirectory directory;
  Run saved(1, 3);
  TrainingState state = saved.state(3);
  save_checkpoint(directory / "run.safetensors", *saved.model, saved.optimizer, state);

  Run loaded(99, 0);  // other weights, no optimizer state yet
  TrainingState restored = load_checkpoint(directory / "run.safetensors", *loaded.model, loaded.optimizer);
  require_same(Snapshot(*saved.model, saved.optimizer), Snapshot(*loaded.model, loaded.optimizer));
  CHECK(restored.step == 3);
  CHECK(restored.generator("default") == state.generator("default"));
  CHECK(restored.loader("train") == state.loader("train"));
  CHECK(restored.metadata == state.metadata);
  CHECK(restored.source == directory / "run.safetensors");
}

TEST_CASE("a run resumed from a checkpoint continues bitwise identically (in one process)") {
  ScratchDirectory directory;
  Run straight(5, 0);
  std::vector<double> straight_losses;
  for (int i = 0; i < 8; ++i) {
    straight_losses.push_back(train_step(*straight.model, straight.optimizer, straight.loader));
  }

  std::vector<double> resumed_losses;
  {
    Run first_half(5, 0);
    for (int i = 0; i < 4; ++i) {
      resumed_losses.push_back(train_step(*first_half.model, first_half.optimizer, first_half.loader));
    }
    save_checkpoint(directory / "half.safetensors", *first_half.model, first_half.optimizer, first_half.state(4));
  }
  Run second_half(77, 0);  // other weights, and the default generator moved elsewhere
  TrainingState state = load_checkpoint(directory / "half.safetensors", *second_half.model, second_half.optimizer);
  restore_generator(state.generator("default"));
  second_half.loader.set_state(state.loader("train"));
  for (int i = 0; i < 4; ++i) {
    resumed_losses.push_back(train_step(*second_half.model, second_half.optimizer, second_half.loader));
  }

  for (size_t i = 0; i < straight_losses.size(); ++i) {
    INFO("step " << i + 1);
    CHECK(resumed_losses[i] == straight_losses[i]);  // exact, not approximate
  }
  require_same(Snapshot(*straight.model, straight.optimizer), Snapshot(*second_half.model, second_half.optimizer));
}

TEST_CASE("optimizer state under names of the optimizer's own is saved and restored (not a fixed list of names)") {
  ScratchDirectory directory;
  manual_seed(3);
  auto model = small_model(8);
  dtrain::testing::VelocityOptimizer optimizer(model->parameters(), {});
  DataLoader loader(small_dataset(), {.batch_size = 16, .shuffle = true, .seed = 7});
  for (int i = 0; i < 3; ++i) train_step(*model, optimizer, loader);
  REQUIRE(optimizer.state(0).tensors.count("velocity") == 1);
  save_checkpoint(directory / "velocity.safetensors", *model, optimizer, {.step = 3});

  manual_seed(4);
  auto other = small_model(8);
  dtrain::testing::VelocityOptimizer restored(other->parameters(), {});
  load_checkpoint(directory / "velocity.safetensors", *other, restored);
  for (size_t p = 0; p < optimizer.num_parameters(); ++p) {
    INFO("parameter " << p);
    REQUIRE(restored.state(p).tensors.size() == 2);
    CHECK(restored.state(p).step == 3);
    CHECK(same_bytes(restored.state(p).tensors.at("velocity"), optimizer.state(p).tensors.at("velocity")));
    CHECK(same_bytes(restored.state(p).tensors.at("squared_gradient_sum"),
                     optimizer.state(p).tensors.at("squared_gradient_sum")));
  }
}

TEST_CASE("a model that does not fit is refused, naming the file and the tensor, and nothing is loaded") {
  ScratchDirectory directory;
  Run saved(1, 2, /*hidden=*/8);
  save_checkpoint(directory / "run.safetensors", *saved.model, saved.optimizer, saved.state(2));

  Run other(2, 1, /*hidden=*/5);
  Snapshot before(*other.model, other.optimizer);
  REQUIRE_THROWS_WITH(load_checkpoint(directory / "run.safetensors", *other.model, other.optimizer),
                      Contains((directory / "run.safetensors").string()) && Contains("model.0.weight") &&
                          Contains("[5, 4]") && Contains("[8, 4]"));
  require_same(before, Snapshot(*other.model, other.optimizer));
}

TEST_CASE("an optimizer that does not fit is refused, and the model is not loaded either") {
  ScratchDirectory directory;
  Run saved(1, 2);
  save_checkpoint(directory / "run.safetensors", *saved.model, saved.optimizer, saved.state(2));

  SECTION("another optimizer type") {
    manual_seed(3);
    auto model = small_model();
    optim::SGD sgd(model->parameters(), {.lr = 0.1});
    Snapshot before(*model, sgd);
    REQUIRE_THROWS_WITH(load_checkpoint(directory / "run.safetensors", *model, sgd),
                        Contains((directory / "run.safetensors").string()) && Contains("AdamW") && Contains("SGD"));
    require_same(before, Snapshot(*model, sgd));
  }
  SECTION("the same type over other parameters") {
    manual_seed(3);
    auto model = small_model();
    std::vector<Tensor> first_layer = {model->parameters()[0], model->parameters()[1]};
    optim::AdamW adamw(first_layer, {.lr = 0.01});
    Snapshot before(*model, adamw);
    REQUIRE_THROWS_WITH(load_checkpoint(directory / "run.safetensors", *model, adamw),
                        Contains((directory / "run.safetensors").string()) &&
                            Contains("'optimizer.state.3.weight.exp_avg'") &&
                            Contains("a parameter '3.weight' that the optimizer does not have"));
    require_same(before, Snapshot(*model, adamw));
  }
}

TEST_CASE("a truncated checkpoint is refused, naming the file, and nothing is loaded") {
  ScratchDirectory directory;
  Run saved(1, 2);
  std::filesystem::path path = directory / "run.safetensors";
  save_checkpoint(path, *saved.model, saved.optimizer, saved.state(2));
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);

  Run other(2, 1);
  Snapshot before(*other.model, other.optimizer);
  REQUIRE_THROWS_WITH(load_checkpoint(path, *other.model, other.optimizer), Contains(path.string()));
  require_same(before, Snapshot(*other.model, other.optimizer));
}

TEST_CASE("a checkpoint with one flipped data byte is refused, naming the tensor and its bytes, and nothing is loaded") {
  ScratchDirectory directory;
  Run saved(1, 2);
  std::filesystem::path path = directory / "run.safetensors";
  save_checkpoint(path, *saved.model, saved.optimizer, saved.state(2));
  SafetensorsHeader header = read_safetensors_header(path);
  REQUIRE(header.has_checksums);
  for (const SafetensorsEntry& entry : header.entries) {
    if (entry.name != "model.0.weight") continue;
    const uint64_t begin = header.buffer_offset + entry.begin;
    const uint64_t end = header.buffer_offset + entry.end;
    {
      std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
      file.seekg(static_cast<std::streamoff>(begin + 15));
      char byte = 0;
      file.read(&byte, 1);
      byte = static_cast<char>(byte ^ 0x40);  // the top exponent bit of element 3: a huge change
      file.seekp(static_cast<std::streamoff>(begin + 15));
      file.write(&byte, 1);
    }
    Run other(2, 1);
    Snapshot before(*other.model, other.optimizer);
    REQUIRE_THROWS_WITH(load_checkpoint(path, *other.model, other.optimizer),
                        Contains(path.string()) && Contains("tensor 'model.0.weight'") &&
                            Contains("file bytes [" + std::to_string(begin) + ", " + std::to_string(end) + ")") &&
                            Contains("CRC-32"));
    require_same(before, Snapshot(*other.model, other.optimizer));
  }
}

TEST_CASE("a checkpoint says whether its data was verified: dtrain's are, a file without checksums is not") {
  ScratchDirectory directory;
  Run saved(1, 2);
  save_checkpoint(directory / "run.safetensors", *saved.model, saved.optimizer, saved.state(2));
  Run loaded(2, 0);
  CHECK(load_checkpoint(directory / "run.safetensors", *loaded.model, loaded.optimizer).verified);

  // The same tensors and metadata written without checksums, as another tool would.
  SafetensorsFile file = load_safetensors(directory / "run.safetensors");
  save_safetensors(directory / "foreign.safetensors", file.tensors, file.metadata, {.checksums = false});
  Run foreign(3, 0);
  TrainingState state = load_checkpoint(directory / "foreign.safetensors", *foreign.model, foreign.optimizer);
  CHECK_FALSE(state.verified);
  CHECK(state.step == 2);
  require_same(Snapshot(*saved.model, saved.optimizer), Snapshot(*foreign.model, foreign.optimizer));
}

TEST_CASE("bad or missing checkpoint metadata is refused, naming the file and the key") {
  ScratchDirectory directory;
  Run run(1, 1);
  std::map<std::string, Tensor> tensors;
  for (const auto& [name, tensor] : run.model->state_dict()) tensors["model." + name] = tensor;
  tensors.merge(named_optimizer_state(run.optimizer.state_dict(),
                                      optimizer_parameter_names(*run.model, run.optimizer, "the test")));
  std::filesystem::path path = directory / "run.safetensors";
  Snapshot before(*run.model, run.optimizer);

  SECTION("a plain safetensors file, not a training checkpoint") {
    save_safetensors(path, tensors);
    REQUIRE_THROWS_WITH(load_checkpoint(path, *run.model, run.optimizer),
                        Contains(path.string()) && Contains("missing 'format'") && Contains("missing 'step'"));
  }
  SECTION("a step that is not a number") {
    save_safetensors(path, tensors, {{"format", kCheckpointFormat}, {"optimizer", "AdamW"}, {"step", "12x"}});
    REQUIRE_THROWS_WITH(load_checkpoint(path, *run.model, run.optimizer), Contains(path.string()) && Contains("'step'"));
  }
  SECTION("a generator without its offset, and an unknown key") {
    save_safetensors(path, tensors,
                     {{"format", kCheckpointFormat},
                      {"optimizer", "AdamW"},
                      {"step", "1"},
                      {"generator.default.seed", "3"},
                      {"colour", "blue"}});
    REQUIRE_THROWS_WITH(load_checkpoint(path, *run.model, run.optimizer),
                        Contains("generator 'default'") && Contains("unexpected key 'colour'"));
  }
  SECTION("a tensor outside model.* and optimizer.*") {
    tensors["stray"] = zeros({2});
    save_safetensors(path, tensors, encode_checkpoint_metadata(run.state(1), "AdamW"));
    REQUIRE_THROWS_WITH(load_checkpoint(path, *run.model, run.optimizer),
                        Contains(path.string()) && Contains("'stray'"));
  }
  require_same(before, Snapshot(*run.model, run.optimizer));
}

TEST_CASE("checkpoint metadata keeps 64-bit seeds and offsets exactly, and names with dots") {
  TrainingState state{.step = 123456789012,
                      .generators = {{"default", {std::numeric_limits<uint64_t>::max(), (uint64_t{1} << 63) + 1}}},
                      .loaders = {{"train.shard", {std::numeric_limits<uint64_t>::max() - 1, 3, 17}}},
                      .metadata = {{"config", "{\"layers\": 4}"}}};
  std::string optimizer;
  TrainingState decoded = decode_checkpoint_metadata(encode_checkpoint_metadata(state, "Adam"), "x", optimizer);
  CHECK(optimizer == "Adam");
  CHECK(decoded.step == state.step);
  CHECK(decoded.generators == state.generators);
  CHECK(decoded.loaders == state.loaders);
  CHECK(decoded.metadata == state.metadata);
}

TEST_CASE("TrainingState names the checkpoint and the entries it has when one is missing") {
  TrainingState state{.generators = {{"default", {}}}, .source = "run.safetensors"};
  CHECK_THROWS_WITH(state.generator("dropout"),
                    Contains("run.safetensors") && Contains("'dropout'") && Contains("'default'"));
  CHECK_THROWS_WITH(state.loader("train"), Contains("no data loader called 'train'") && Contains("none"));
}

TEST_CASE("generator_state and restore_generator round-trip a generator's position") {
  Generator generator(42);
  rand({10}, {}, &generator);
  GeneratorState saved = generator_state(generator);
  Tensor expected = rand({5}, {}, &generator);
  Generator other(7);
  restore_generator(saved, other);
  CHECK(same_bytes(rand({5}, {}, &other), expected));
}
