// The one naming of saved state (train/checkpoint_names.h): optimizer state between the
// optimizer's index keys and parameter names, a v1 single-file checkpoint (state by index)
// still loading with the same values, and weights files of either naming.
#include <catch2/catch.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dtrain.h"
#include "tests/checkpoint/checkpoint_test_support.h"

using namespace dtrain;
using namespace dtrain::train;
using namespace dtrain::train::testing;
using Catch::Contains;

namespace {

// The model's parameters in two groups, biases last, so the optimizer's index order (0.weight,
// 3.weight, 0.bias, 3.bias) differs from the model's: a mix-up of index and name shows.
optim::AdamW biases_last(const Module& model) {
  std::vector<Tensor> weights, biases;
  for (const auto& [name, parameter] : model.named_parameters()) {
    (name.find("bias") != std::string::npos ? biases : weights).push_back(parameter);
  }
  return optim::AdamW(std::vector<optim::ParamGroupOptions<optim::AdamWOptions>>{
      {.params = weights, .options = {.lr = 0.01, .weight_decay = 0.1}},
      {.params = biases, .options = {.lr = 0.02, .weight_decay = 0.0}}});
}

bool same_state(const optim::Optimizer& a, const optim::Optimizer& b) {
  const optim::StateDict x = a.state_dict();
  const optim::StateDict y = b.state_dict();
  if (x.size() != y.size()) return false;
  for (const auto& [key, tensor] : x) {
    if (!y.contains(key) || !same_bytes(tensor, y.at(key))) return false;
  }
  return true;
}

bool same_weights(const Module& a, const Module& b) {
  const StateDict x = a.state_dict();
  const StateDict y = b.state_dict();
  for (const auto& [name, tensor] : x) {
    const Tensor* other = y.find(name);
    if (other == nullptr || !same_bytes(tensor, *other)) return false;
  }
  return x.size() == y.size();
}

}  // namespace

TEST_CASE("optimizer state keys go from the optimizer's index to the parameter's name and back") {
  manual_seed(1);
  auto model = small_model();
  optim::AdamW optimizer = biases_last(*model);
  DataLoader loader(small_dataset(), {.batch_size = 16, .shuffle = true, .seed = 7});
  train_step(*model, optimizer, loader);

  const std::vector<std::string> names = optimizer_parameter_names(*model, optimizer, "the test");
  CHECK(names == std::vector<std::string>{"0.weight", "3.weight", "0.bias", "3.bias"});

  const optim::StateDict by_index = optimizer.state_dict();
  const std::map<std::string, Tensor> named = named_optimizer_state(by_index, names);
  CHECK(named.size() == by_index.size());
  // The optimizer's parameter 1 is the model's "3.weight".
  CHECK(same_bytes(named.at("optimizer.state.3.weight.exp_avg"), by_index.at("state.1.exp_avg")));
  CHECK(same_bytes(named.at("optimizer.state.0.bias.exp_avg_sq"), by_index.at("state.2.exp_avg_sq")));
  CHECK(named.at("optimizer.state.3.bias.step").item<int64_t>() == 1);
  CHECK(same_bytes(named.at("optimizer.param_groups.1.params"), by_index.at("param_groups.1.params")));
  CHECK(named.count("optimizer.state.1.exp_avg") == 0);

  optim::StateDictProblems problems;
  const optim::StateDict back = indexed_optimizer_state(named, names, problems);
  CHECK(problems.empty());
  REQUIRE(back.size() == by_index.size());
  for (const auto& [key, tensor] : by_index) {
    INFO(key);
    REQUIRE(back.contains(key));
    CHECK(same_bytes(back.at(key), tensor));
  }

  CHECK(split_optimizer_state_key("optimizer.state.blocks.0.attn.proj.bias.exp_avg") ==
        std::pair<std::string, std::string>("blocks.0.attn.proj.bias", "exp_avg"));
  CHECK(split_optimizer_state_key("model.0.weight") == std::pair<std::string, std::string>());

  std::map<std::string, Tensor> stray = named;
  stray["optimizer.state.9.weight.exp_avg"] = zeros({2});
  optim::StateDictProblems stray_problems;
  indexed_optimizer_state(stray, names, stray_problems);
  CHECK_THROWS_WITH(stray_problems.raise_if_any("loading"),
                    Contains("'optimizer.state.9.weight.exp_avg'") && Contains("a parameter '9.weight'"));
}

TEST_CASE("state of an optimizer parameter that is not the model's has no name, and saving it is refused") {
  ScratchDirectory directory;
  auto model = small_model();
  optim::SGD optimizer(std::vector<Tensor>{zeros({3}).set_requires_grad()}, {.lr = 0.1});
  CHECK_THROWS_WITH(save_checkpoint(directory / "run.safetensors", *model, optimizer, {}),
                    Contains("save_checkpoint") && Contains("not a parameter of the model"));
}

TEST_CASE("a v1 checkpoint, optimizer state keyed by index, still loads with the same values") {
  ScratchDirectory directory;
  manual_seed(2);
  auto model = small_model();
  optim::AdamW optimizer = biases_last(*model);
  DataLoader loader(small_dataset(), {.batch_size = 16, .shuffle = true, .seed = 7});
  for (int i = 0; i < 3; ++i) train_step(*model, optimizer, loader);

  // Written as save_checkpoint wrote format v1: the optimizer's own state dict keys.
  std::map<std::string, Tensor> tensors;
  for (const auto& [name, tensor] : model->state_dict()) tensors["model." + name] = tensor;
  for (const auto& [key, tensor] : optimizer.state_dict()) tensors["optimizer." + key] = tensor;
  REQUIRE(tensors.count("optimizer.state.1.exp_avg") == 1);
  std::map<std::string, std::string> metadata = encode_checkpoint_metadata({.step = 3, .metadata = {{"run", "old"}}},
                                                                           "AdamW");
  metadata["format"] = "dtrain.checkpoint.v1";
  save_safetensors(directory / "v1.safetensors", tensors, metadata);

  manual_seed(9);
  auto loaded_model = small_model();
  optim::AdamW loaded_optimizer = biases_last(*loaded_model);
  TrainingState state = load_checkpoint(directory / "v1.safetensors", *loaded_model, loaded_optimizer);
  CHECK(state.step == 3);
  CHECK(state.metadata.at("run") == "old");
  CHECK(same_weights(*loaded_model, *model));
  CHECK(same_state(loaded_optimizer, optimizer));

  // Saved again, it is written in the one naming, and loads to the same values.
  save_checkpoint(directory / "v2.safetensors", *loaded_model, loaded_optimizer, state);
  SafetensorsFile v2 = load_safetensors(directory / "v2.safetensors");
  CHECK(v2.metadata.at("format") == "dtrain.checkpoint.v2");
  CHECK(same_bytes(v2.tensors.at("optimizer.state.3.weight.exp_avg"), optimizer.state(1).tensors.at("exp_avg")));

  // A v1 file read as v2 would find no parameter called "1": the format decides the reading.
  metadata["format"] = "dtrain.checkpoint.v2";
  save_safetensors(directory / "mislabelled.safetensors", tensors, metadata);
  CHECK_THROWS_WITH(load_checkpoint(directory / "mislabelled.safetensors", *loaded_model, loaded_optimizer),
                    Contains("'optimizer.state.1.exp_avg'"));
}

TEST_CASE("a weights file loads under either naming: model.<name>, or the bare names of older files") {
  ScratchDirectory directory;
  manual_seed(3);
  auto model = small_model();
  std::map<std::string, Tensor> bare = model->state_dict().to_map();
  std::map<std::string, Tensor> prefixed;
  for (const auto& [name, tensor] : bare) prefixed["model." + name] = tensor;
  save_safetensors(directory / "bare.safetensors", bare);
  save_safetensors(directory / "prefixed.safetensors", prefixed);
  // A training checkpoint's optimizer tensors are skipped.
  prefixed["optimizer.state.0.weight.exp_avg"] = zeros({8, 4});
  save_safetensors(directory / "with-optimizer.safetensors", prefixed);

  for (const char* file : {"bare.safetensors", "prefixed.safetensors", "with-optimizer.safetensors"}) {
    INFO(file);
    manual_seed(4);
    auto other = small_model();
    REQUIRE_FALSE(same_weights(*other, *model));
    load_weights(*other, directory / file);
    CHECK(same_weights(*other, *model));
  }

  // A model whose own names begin with "model." reads the bare file as it is.
  manual_seed(5);
  auto outer = std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{});
  outer->register_module("model", small_model());
  std::map<std::string, Tensor> outer_bare = outer->state_dict().to_map();
  save_safetensors(directory / "outer.safetensors", outer_bare);
  manual_seed(6);
  auto outer_again = std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{});
  outer_again->register_module("model", small_model());
  load_weights(*outer_again, directory / "outer.safetensors");
  CHECK(same_weights(*outer_again, *outer));

  // Missing, unexpected and ambiguous tensors are named, with the file.
  prefixed.erase("model.3.bias");
  save_safetensors(directory / "missing.safetensors", prefixed);
  auto target = small_model();
  CHECK_THROWS_WITH(load_weights(*target, directory / "missing.safetensors"),
                    Contains("missing.safetensors") && Contains("3.bias"));
  std::map<std::string, Tensor> both = prefixed;
  both["model.3.bias"] = bare.at("3.bias");
  both["0.weight"] = bare.at("0.weight");
  save_safetensors(directory / "both.safetensors", both);
  CHECK_THROWS_WITH(load_weights(*target, directory / "both.safetensors"),
                    Contains("both '0.weight' and 'model.0.weight'"));
}
