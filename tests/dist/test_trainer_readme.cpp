// The README's "Training your own model" code, compiled and run: the lines between the markers
// below are the README's code block, byte for byte (the first test checks it), and the other
// tests call them — a world of one, and under mpirun -np 2 (tests/CMakeLists.txt).
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/ops/factory.h"
#include "core/random.h"

// README: begin
#include "dtrain.h"
using namespace dtrain;

// A model of one's own: any Module.
struct TwoLayerNet : Module {
  std::shared_ptr<Linear> hidden = register_module("hidden", std::make_shared<Linear>(2, 32));
  std::shared_ptr<Linear> output = register_module("output", std::make_shared<Linear>(32, 2));
  TwoLayerNet() : Module("TwoLayerNet") {}
  Tensor forward(const Tensor& x) override { return (*output)(relu((*hidden)(x))); }
};

// Trains it on this rank's share of the data (DDP, or ZeRO at stage 1-3) and returns the
// accuracy on all of it. dist::init() has run: under mpirun every rank calls this.
double train_two_layer_net(std::shared_ptr<const TensorDataset> data, train::DataParallel mode, int zero_stage) {
  train::Trainer trainer(std::make_shared<TwoLayerNet>(), [](std::vector<Tensor> parameters) {
    return std::make_unique<optim::AdamW>(std::move(parameters), optim::AdamWOptions{.lr = 0.02});
  }, {.data_parallel = mode, .zero_stage = zero_stage, .grad_clip = 1.0});
  DataLoader loader(data, {.batch_size = 32, .sampler = dist::distributed_sampler(data->size(), {.seed = 1})});
  trainer.fit(loader, 300, [&](const Batch& batch) { return cross_entropy(trainer(batch.inputs), batch.targets); });
  NoGradGuard no_grad;
  Tensor predicted = argmax(trainer(data->inputs()), 1);
  return sum(eq(predicted, data->targets())).item() / static_cast<double>(data->size());
}
// README: end

namespace {

// XOR of the signs: no straight line separates the classes, so the hidden layer must learn.
std::shared_ptr<const TensorDataset> xor_data() {
  Generator generator(4);
  Tensor points = rand({512, 2}, {}, &generator) * 2.0 - 1.0;
  std::vector<float> xy = points.to_vector<float>();
  std::vector<int64_t> labels;
  for (size_t i = 0; i < xy.size(); i += 2) labels.push_back(xy[i] * xy[i + 1] > 0 ? 1 : 0);
  return std::make_shared<const TensorDataset>(points, from_vector(labels));
}

std::string read_text(const std::string& path) {
  std::ifstream file(path);
  REQUIRE(file);
  return std::string(std::istreambuf_iterator<char>(file), {});
}

std::string between(const std::string& text, const std::string& begin, const std::string& end) {
  size_t from = text.find(begin);
  REQUIRE(from != std::string::npos);
  from += begin.size();
  size_t to = text.find(end, from);
  REQUIRE(to != std::string::npos);
  return text.substr(from, to - from);
}

}  // namespace

TEST_CASE("README: the trainer example is this file's code, byte for byte", "[readme]") {
  const std::string source = read_text(std::string(DTRAIN_SOURCE_DIR) + "/tests/dist/test_trainer_readme.cpp");
  const std::string readme = read_text(std::string(DTRAIN_SOURCE_DIR) + "/README.md");
  const std::string code = between(source, "// README: begin\n", "// README: end\n");
  CHECK(readme.find("```cpp\n" + code + "```\n") != std::string::npos);
}

TEST_CASE("README: a user's model trains with DDP and with ZeRO stage 2 through the trainer", "[readme]") {
  auto data = xor_data();
  const double ddp = train_two_layer_net(data, train::DataParallel::DDP, 0);
  const double zero = train_two_layer_net(data, train::DataParallel::Zero, 2);
  std::printf("rank %d/%d: XOR accuracy %.3f with DDP, %.3f with ZeRO stage 2\n", dist::rank(), dist::world_size(),
              ddp, zero);
  // A linear model reaches about 0.5 on XOR; the trained net is far above it.
  CHECK(ddp >= 0.9);
  CHECK(zero >= 0.9);
}
