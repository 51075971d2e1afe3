// train::load_weights: weights written by PyTorch, by dtrain (plain names, a training checkpoint's
// "model." names next to its optimizer state), cast to the model's dtype; a missing, extra or
// wrongly shaped tensor raises its own named error and leaves the model untouched.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/ops/factory.h"
#include "core/random.h"
#include "core/safetensors.h"
#include "core/tensor.h"
#include "layers/activation.h"
#include "layers/container.h"
#include "layers/linear.h"
#include "optim/adamw.h"
#include "train/checkpoint.h"
#include "train/load_weights.h"

using namespace dtrain;
using Catch::Contains;

namespace {

std::shared_ptr<Sequential> make_net(uint64_t seed, int64_t hidden = 8) {
  manual_seed(seed);
  auto net = std::make_shared<Sequential>();
  net->push_back(std::make_shared<Linear>(4, hidden));
  net->push_back(std::make_shared<ReLU>());
  net->push_back(std::make_shared<Linear>(hidden, 2));
  return net;
}

std::filesystem::path scratch_file(const std::string& name) {
  return std::filesystem::temp_directory_path() / ("dtrain-load-weights-" + std::to_string(::getpid()) + "-" + name);
}

std::map<std::string, std::vector<float>> values_of(const Module& module) {
  std::map<std::string, std::vector<float>> values;
  for (const auto& [name, tensor] : module.state_dict()) values[name] = tensor.to(kFloat32).to_vector<float>();
  return values;
}

}  // namespace

TEST_CASE("load_weights: PyTorch's save_file(model.state_dict()) gives PyTorch's outputs", "[load_weights]") {
  const std::string folder = std::string(DTRAIN_TEST_DATA_DIR) + "/torch_weights";
  auto net = make_net(1);
  train::load_weights(*net, folder + "/model.safetensors");
  SafetensorsFile reference = load_safetensors(folder + "/reference.safetensors");
  std::vector<float> outputs = (*net)(reference.tensors.at("inputs")).to_vector<float>();
  std::vector<float> expected = reference.tensors.at("outputs").to_vector<float>();
  REQUIRE(outputs.size() == expected.size());
  for (size_t i = 0; i < outputs.size(); ++i) CHECK(outputs[i] == Approx(expected[i]).margin(1e-6));
}

TEST_CASE("load_weights: names with and without the 'model.' prefix, a training checkpoint, a cast", "[load_weights]") {
  auto source = make_net(2);
  const auto expected = values_of(*source);

  SECTION("plain names (a consolidated checkpoint's)") {
    auto path = scratch_file("plain.safetensors");
    save_safetensors(path, source->state_dict().to_map());
    auto net = make_net(3);
    REQUIRE(values_of(*net) != expected);
    train::load_weights(*net, path);
    CHECK(values_of(*net) == expected);
    std::filesystem::remove(path);
  }
  SECTION("'model.' names") {
    auto path = scratch_file("prefixed.safetensors");
    std::map<std::string, Tensor> tensors;
    for (const auto& [name, tensor] : source->state_dict()) tensors["model." + name] = tensor;
    save_safetensors(path, tensors);
    auto net = make_net(3);
    train::load_weights(*net, path);
    CHECK(values_of(*net) == expected);
    std::filesystem::remove(path);
  }
  SECTION("a training checkpoint: its optimizer state is not the model's and is skipped") {
    auto path = scratch_file("checkpoint.safetensors");
    optim::AdamW optimizer(source->parameters(), {.lr = 0.1});
    for (Tensor parameter : source->parameters()) parameter.set_grad(ones_like(parameter));
    optimizer.step();  // creates the state tensors a checkpoint saves
    const auto stepped = values_of(*source);
    train::save_checkpoint(path, *source, optimizer, {.step = 1});
    REQUIRE(load_safetensors(path).tensors.size() > source->state_dict().size());
    auto net = make_net(3);
    train::load_weights(*net, path);
    CHECK(values_of(*net) == stepped);
    std::filesystem::remove(path);
  }
  SECTION("float32 weights into a float64 model") {
    auto path = scratch_file("cast.safetensors");
    save_safetensors(path, source->state_dict().to_map());
    auto net = make_net(3);
    net->to(kFloat64);
    train::load_weights(*net, path);
    for (const auto& [name, tensor] : net->state_dict()) CHECK(tensor.dtype() == kFloat64);
    CHECK(values_of(*net) == expected);  // float32 -> float64 -> float32 is exact
    std::filesystem::remove(path);
  }
}

TEST_CASE("load_weights: a missing, an extra, a wrongly shaped tensor each raise their named error", "[load_weights]") {
  auto source = make_net(2);
  auto net = make_net(3);
  const auto before = values_of(*net);
  auto path = scratch_file("bad.safetensors");
  std::map<std::string, Tensor> tensors = source->state_dict().to_map();

  SECTION("missing") {
    tensors.erase("2.bias");
    save_safetensors(path, tensors);
    CHECK_THROWS_AS(train::load_weights(*net, path), train::MissingWeightError);
    CHECK_THROWS_WITH(train::load_weights(*net, path), Contains("the model's '2.bias' is not in the file"));
  }
  SECTION("extra") {
    tensors["3.weight"] = zeros({2, 2});
    save_safetensors(path, tensors);
    CHECK_THROWS_AS(train::load_weights(*net, path), train::UnexpectedWeightError);
    CHECK_THROWS_WITH(train::load_weights(*net, path), Contains("the file's '3.weight' is not in the model"));
  }
  SECTION("wrongly shaped") {
    tensors = make_net(2, 6)->state_dict().to_map();  // hidden width 6 instead of 8
    save_safetensors(path, tensors);
    CHECK_THROWS_AS(train::load_weights(*net, path), train::WeightShapeError);
    CHECK_THROWS_WITH(train::load_weights(*net, path),
                      Contains("'0.weight': the model's [8, 4], the file's [6, 4]") && Contains(path.string()));
  }
  SECTION("a file that does not exist") {
    CHECK_THROWS_AS(train::load_weights(*net, path), Error);
  }
  // Checked before anything is copied: the model is as it was.
  CHECK(values_of(*net) == before);
  std::filesystem::remove(path);
}
