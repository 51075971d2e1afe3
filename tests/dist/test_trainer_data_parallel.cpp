// train::Trainer on every rank of the job: DDP and each ZeRO stage, with gradient accumulation,
// clipping and a schedule, train a float64 model to the same parameters (1e-9 relative, the
// bound of tests/dist/test_zero_equivalence.cpp); a ZeRO stage 2 run checkpointed (rotated
// directories) and resumed with DDP continues as the straight run; a bad checkpoint raises on
// every rank. Runs as a world of one and under mpirun -np 2, 3.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
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
#include "optim/lr_schedule.h"
#include "train/trainer.h"

using namespace dtrain;

namespace {

constexpr int64_t kSteps = 8;

std::shared_ptr<Sequential> make_net(uint64_t seed) {
  manual_seed(seed);
  auto net = std::make_shared<Sequential>();
  net->push_back(std::make_shared<Linear>(6, 16));
  net->push_back(std::make_shared<ReLU>());
  net->push_back(std::make_shared<Linear>(16, 16));
  net->push_back(std::make_shared<ReLU>());
  net->push_back(std::make_shared<Linear>(16, 3));
  net->to(kFloat64);
  return net;
}

std::shared_ptr<const TensorDataset> regression_data() {
  Generator generator(21);
  Tensor inputs = randn({240, 6}, {.dtype = kFloat64}, &generator);
  Tensor targets = randn({240, 3}, {.dtype = kFloat64}, &generator);
  return std::make_shared<const TensorDataset>(inputs, targets);
}

train::TrainerOptions options_for(train::DataParallel mode, int stage) {
  return {.data_parallel = mode,
          .zero_stage = stage,
          .grad_accum = 2,
          .grad_clip = 0.5,  // acts: the first steps' gradient norms are above it
          .schedule = optim::warmup_cosine_lr({.max_lr = 0.02, .warmup_steps = 2, .total_steps = kSteps})};
}

train::OptimizerFactory adamw() {
  return [](std::vector<Tensor> parameters) {
    return std::make_unique<optim::AdamW>(std::move(parameters), optim::AdamWOptions{.lr = 0.02, .weight_decay = 0.1});
  };
}

DataLoader make_loader(const std::shared_ptr<const TensorDataset>& data) {
  return DataLoader(data, {.batch_size = 4, .sampler = dist::distributed_sampler(data->size(), {.seed = 3})});
}

std::function<Tensor(const Batch&)> mse_through(train::Trainer& trainer) {
  return [&trainer](const Batch& batch) { return mse_loss(trainer(batch.inputs), batch.targets); };
}

// Largest |a - b| / max(1, |b|) over every parameter.
double relative_difference(const StateDict& actual, const StateDict& expected) {
  REQUIRE(actual.keys() == expected.keys());
  double largest = 0;
  for (const auto& [name, tensor] : expected) {
    std::vector<double> a = actual.at(name).to_vector<double>();
    std::vector<double> b = tensor.to_vector<double>();
    for (size_t i = 0; i < b.size(); ++i) largest = std::max(largest, std::abs(a[i] - b[i]) / std::max(1.0, std::abs(b[i])));
  }
  return largest;
}

StateDict train_straight(train::DataParallel mode, int stage) {
  auto data = regression_data();
  train::Trainer trainer(make_net(5), adamw(), options_for(mode, stage));
  DataLoader loader = make_loader(data);
  trainer.fit(loader, kSteps, mse_through(trainer));
  return trainer.full_parameters();
}

// A directory every rank agrees on: rank 0's pid.
std::filesystem::path shared_scratch(const std::string& name) {
  Tensor pid = full({1}, static_cast<double>(::getpid()), {.dtype = kFloat64});
  dist::world().broadcast(pid, 0)->wait();
  return std::filesystem::temp_directory_path() /
         ("dtrain-trainer-dp-" + std::to_string(static_cast<int64_t>(pid.item())) + "-" + name);
}

}  // namespace

TEST_CASE("Trainer: DDP and ZeRO stages 0-3 train to the same parameters (fp64, accumulation, clipping)",
          "[trainer][equivalence]") {
  const StateDict ddp = train_straight(train::DataParallel::DDP, 0);
  const StateDict untrained = train::Trainer(make_net(5), adamw(), {.data_parallel = train::DataParallel::None})
                                  .full_parameters();
  REQUIRE(relative_difference(ddp, untrained) > 1e-3);  // training moved the weights
  for (int stage = 0; stage <= 3; ++stage) {
    INFO("ZeRO stage " << stage << ", world of " << dist::world_size());
    CHECK(relative_difference(train_straight(train::DataParallel::Zero, stage), ddp) <= 1e-9);
  }
}

TEST_CASE("Trainer: a ZeRO stage 2 run saved in rotated directories resumes with DDP as the straight run",
          "[trainer][checkpoint]") {
  auto data = regression_data();
  const auto root = shared_scratch("rotation");
  if (dist::rank() == 0) std::filesystem::remove_all(root);
  dist::world().barrier()->wait();
  std::vector<std::string> saved;
  {
    train::TrainerOptions options = options_for(train::DataParallel::Zero, 2);
    options.checkpoint = root.string();
    options.checkpoint_every = 2;
    options.keep_checkpoints = 2;
    options.on_checkpoint = [&](const std::string& path, int64_t) { saved.push_back(path); };
    train::Trainer first(make_net(5), adamw(), options);
    DataLoader loader = make_loader(data);
    first.fit(loader, kSteps / 2 + 1, mse_through(first));  // steps 2, 4 and the last, 5
  }
  REQUIRE(saved.size() == 3);
  CHECK(saved.back() == (root / "step-00000005").string());
  if (dist::rank() == 0) {  // the newest two kept
    CHECK_FALSE(std::filesystem::exists(root / "step-00000002"));
    CHECK(std::filesystem::exists(root / "step-00000004" / "index.json"));
    CHECK(std::filesystem::exists(root / "step-00000005" / "index.json"));
  }

  train::Trainer resumed(make_net(77), adamw(), options_for(train::DataParallel::DDP, 0));
  DataLoader loader = make_loader(data);
  train::TrainingState state = resumed.resume(root.string(), loader);  // the newest complete one
  CHECK(state.step == kSteps / 2 + 1);
  resumed.fit(loader, kSteps, mse_through(resumed));
  CHECK(relative_difference(resumed.full_parameters(), train_straight(train::DataParallel::DDP, 0)) <= 1e-9);
  dist::world().barrier()->wait();
  if (dist::rank() == 0) std::filesystem::remove_all(root);
}

TEST_CASE("Trainer: a ZeRO run refuses a single-file checkpoint on every rank", "[trainer][checkpoint]") {
  const auto file = shared_scratch("single.safetensors");
  {
    train::Trainer ddp(make_net(5), adamw(), options_for(train::DataParallel::DDP, 0));
    ddp.save(file.string(), {.step = 1});  // rank 0 writes it
  }
  dist::world().barrier()->wait();
  train::Trainer zero(make_net(5), adamw(), options_for(train::DataParallel::Zero, 1));
  CHECK_THROWS_WITH(zero.load(file.string()), Catch::Contains("resumes from a sharded checkpoint directory"));
  dist::world().barrier()->wait();
  if (dist::rank() == 0) std::filesystem::remove(file);
}
