// train::Trainer with TrainerOptions::communication (train/trainer_communication.h): local SGD of
// period 1 trains bitwise as DDP; every method with state of its own (compressions with error
// feedback, local SGD, gossip) resumes from a checkpoint bitwise as the run that never stopped,
// on every rank; a step reports the payload bytes it handed to collectives, counted by hand for
// DDP; a bad method, or one on ZeRO, raises on every rank. Runs as a world of one and under
// mpirun -np 2, 3.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/ops/factory.h"
#include "core/random.h"
#include "core/tensor.h"
#include "data/dataloader.h"
#include "data/dataset.h"
#include "dist/distributed_sampler.h"
#include "dist/init.h"
#include "dist/process_group.h"
#include "layers/activation.h"
#include "layers/container.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "optim/adamw.h"
#include "train/trainer.h"
#include "train/trainer_communication.h"

using namespace dtrain;

namespace {

constexpr int64_t kSteps = 6;

std::shared_ptr<Sequential> make_net() {
  manual_seed(11);
  auto net = std::make_shared<Sequential>();
  net->push_back(std::make_shared<Linear>(6, 16));
  net->push_back(std::make_shared<ReLU>());
  net->push_back(std::make_shared<Linear>(16, 3));
  return net;
}

std::shared_ptr<const TensorDataset> regression_data() {
  Generator generator(21);
  Tensor inputs = randn({240, 6}, {}, &generator);
  Tensor targets = randn({240, 3}, {}, &generator);
  return std::make_shared<const TensorDataset>(inputs, targets);
}

train::OptimizerFactory adamw() {
  return [](std::vector<Tensor> parameters) {
    return std::make_unique<optim::AdamW>(std::move(parameters), optim::AdamWOptions{.lr = 0.01, .weight_decay = 0.1});
  };
}

DataLoader make_loader(const std::shared_ptr<const TensorDataset>& data) {
  return DataLoader(data, {.batch_size = 4, .sampler = dist::distributed_sampler(data->size(), {.seed = 3})});
}

std::function<Tensor(const Batch&)> mse_through(train::Trainer& trainer) {
  return [&trainer](const Batch& batch) { return mse_loss(trainer(batch.inputs), batch.targets); };
}

train::TrainerOptions options_for(const std::string& communication) {
  return {.data_parallel = train::DataParallel::DDP, .communication = communication, .communication_start_step = 1};
}

// This rank's parameters after `steps` steps of a run that never stopped.
StateDict train_straight(const std::string& communication, int64_t steps) {
  auto data = regression_data();
  train::Trainer trainer(make_net(), adamw(), options_for(communication));
  DataLoader loader = make_loader(data);
  trainer.fit(loader, steps, mse_through(trainer));
  return trainer.full_parameters();
}

void require_bitwise_equal(const StateDict& actual, const StateDict& expected) {
  REQUIRE(actual.keys() == expected.keys());
  for (const auto& [name, tensor] : expected) {
    INFO(name);
    CHECK(actual.at(name).to_vector<float>() == tensor.to_vector<float>());
  }
}

// A path every rank agrees on: rank 0's pid.
std::filesystem::path shared_scratch(const std::string& name) {
  Tensor pid = full({1}, static_cast<double>(::getpid()), {.dtype = kFloat64});
  dist::world().broadcast(pid, 0)->wait();
  return std::filesystem::temp_directory_path() /
         ("dtrain-trainer-comm-" + std::to_string(static_cast<int64_t>(pid.item())) + "-" + name);
}

}  // namespace

TEST_CASE("Trainer: local SGD with period 1 trains bitwise as DDP", "[trainer][communication]") {
  const StateDict ddp = train_straight("ddp", kSteps);
  require_bitwise_equal(train_straight("local-sgd:1", kSteps), ddp);
}

TEST_CASE("Trainer: every method with state of its own resumes bitwise from a checkpoint", "[trainer][communication]") {
  for (const std::string method : {"powersgd:2", "int8", "1bit", "topk:0.25", "local-sgd:2", "gossip"}) {
    INFO("communication " << method << ", world of " << dist::world_size());
    const StateDict straight = train_straight(method, kSteps);
    const auto file = shared_scratch(method + ".safetensors");
    auto data = regression_data();
    {
      train::TrainerOptions options = options_for(method);
      options.checkpoint = file.string();
      train::Trainer first(make_net(), adamw(), options);
      DataLoader loader = make_loader(data);
      first.fit(loader, kSteps / 2 + 1, mse_through(first));  // saves at its last step
    }
    CHECK(std::filesystem::exists(train::rank_state_path(file, dist::rank(), dist::world_size())));
    train::Trainer resumed(make_net(), adamw(), options_for(method));
    DataLoader loader = make_loader(data);
    CHECK(resumed.resume(file.string(), loader).step == kSteps / 2 + 1);
    resumed.fit(loader, kSteps, mse_through(resumed));
    require_bitwise_equal(resumed.full_parameters(), straight);

    // Another method cannot take this rank's state.
    train::Trainer other(make_net(), adamw(), options_for(method == "int8" ? "1bit" : "int8"));
    DataLoader other_loader = make_loader(data);
    CHECK_THROWS_WITH(other.resume(file.string(), other_loader), Catch::Contains("dtrain.communication"));
    dist::world().barrier()->wait();
    if (dist::rank() == 0) {
      std::filesystem::remove(file);
      for (int rank = 0; rank < dist::world_size(); ++rank) {
        std::filesystem::remove(train::rank_state_path(file, rank, dist::world_size()));
      }
    }
  }
}

TEST_CASE("Trainer: a DDP step reports the gradients' and the gradient check's bytes", "[trainer][communication]") {
  auto data = regression_data();
  std::vector<train::StepReport> reports;
  train::TrainerOptions options = options_for("ddp");
  options.on_step = [&](const train::StepReport& report) { reports.push_back(report); };
  train::Trainer trainer(make_net(), adamw(), options);
  DataLoader loader = make_loader(data);
  trainer.fit(loader, 2, mse_through(trainer));
  REQUIRE(reports.size() == 2);
  // Every float32 gradient all-reduced once (6*16 + 16 + 16*3 + 3 = 163 values; a world of one
  // hands it to its one-rank group too), plus, with more ranks, the reducer's all-gather of two
  // int32 flags per parameter tensor (4 tensors) that checks every rank had its gradients.
  const int64_t expected = 163 * 4 + (dist::world_size() == 1 ? 0 : 2 * 4 * 4);
  CHECK(reports[0].communication_bytes == expected);
  CHECK(reports[1].communication_bytes == expected);
}

TEST_CASE("Trainer: a bad communication, or one on ZeRO, raises on every rank", "[trainer][communication]") {
  CHECK_THROWS_WITH(train::Trainer(make_net(), adamw(), options_for("powersgd")),
                    Catch::Contains("expected one of ddp, bf16, fp16, powersgd:<rank>"));
  CHECK_THROWS_WITH(train::Trainer(make_net(), adamw(), options_for("local-sgd:0")),
                    Catch::Contains("a period of at least 1 step"));
  train::TrainerOptions zero = options_for("int8");
  zero.data_parallel = train::DataParallel::Zero;
  CHECK_THROWS_WITH(train::Trainer(make_net(), adamw(), zero), Catch::Contains("it needs DataParallel::DDP, got zero"));
}
