// train::Trainer in one process (DataParallel::None, no dist::init): gradient accumulation equals
// one larger batch, clipping equals a clip computed by hand, a resumed run continues bitwise like
// one that never stopped, options are checked. DDP and ZeRO through the trainer:
// tests/dist/test_trainer_data_parallel.cpp.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "core/grad_mode.h"
#include "core/ops/factory.h"
#include "core/random.h"
#include "core/tensor.h"
#include "data/dataloader.h"
#include "data/dataset.h"
#include "layers/activation.h"
#include "layers/container.h"
#include "layers/dropout.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "optim/adamw.h"
#include "optim/lr_schedule.h"
#include "optim/sgd.h"
#include "train/trainer.h"

using namespace dtrain;

namespace {

std::filesystem::path scratch_directory(const std::string& name) {
  auto path = std::filesystem::temp_directory_path() / ("dtrain-trainer-" + std::to_string(::getpid()) + "-" + name);
  std::filesystem::remove_all(path);
  std::filesystem::create_directories(path);
  return path;
}

// 4 -> 8 -> 2 in float64, optionally with dropout (which draws from the default generator).
std::shared_ptr<Sequential> make_net(uint64_t seed, double dropout = 0.0) {
  manual_seed(seed);
  auto net = std::make_shared<Sequential>();
  net->push_back(std::make_shared<Linear>(4, 8));
  net->push_back(std::make_shared<ReLU>());
  if (dropout > 0) net->push_back(std::make_shared<Dropout>(dropout));
  net->push_back(std::make_shared<Linear>(8, 2));
  net->to(kFloat64);
  return net;
}

std::shared_ptr<const TensorDataset> regression_data(int64_t rows) {
  Generator generator(7);
  Tensor inputs = randn({rows, 4}, {.dtype = kFloat64}, &generator);
  Tensor targets = randn({rows, 2}, {.dtype = kFloat64}, &generator);
  return std::make_shared<const TensorDataset>(inputs, targets);
}

train::OptimizerFactory sgd(double lr) {
  return [lr](std::vector<Tensor> parameters) {
    return std::make_unique<optim::SGD>(std::move(parameters), optim::SGDOptions{.lr = lr});
  };
}

train::OptimizerFactory adamw(double lr) {
  return [lr](std::vector<Tensor> parameters) {
    return std::make_unique<optim::AdamW>(std::move(parameters), optim::AdamWOptions{.lr = lr, .weight_decay = 0.01});
  };
}

double max_difference(const Module& a, const Module& b) {
  double largest = 0;
  auto left = a.parameters();
  auto right = b.parameters();
  REQUIRE(left.size() == right.size());
  for (size_t i = 0; i < left.size(); ++i) {
    std::vector<double> x = left[i].to_vector<double>();
    std::vector<double> y = right[i].to_vector<double>();
    for (size_t j = 0; j < x.size(); ++j) largest = std::max(largest, std::abs(x[j] - y[j]));
  }
  return largest;
}

bool bitwise_equal(const Module& a, const Module& b) {
  auto left = a.parameters();
  auto right = b.parameters();
  for (size_t i = 0; i < left.size(); ++i) {
    if (left[i].to_vector<double>() != right[i].to_vector<double>()) return false;
  }
  return left.size() == right.size();
}

}  // namespace

TEST_CASE("Trainer: k micro-batches of b accumulate to one step of a batch k*b (fp64)", "[trainer]") {
  const int64_t k = 4;
  const int64_t b = 3;
  auto data = regression_data(k * b * 5);
  for (const char* optimizer : {"sgd", "adamw"}) {
    SECTION(optimizer) {
      auto factory = std::string(optimizer) == "sgd" ? sgd(0.1) : adamw(0.01);
      auto accumulated = make_net(1);
      auto whole = make_net(1);
      REQUIRE(bitwise_equal(*accumulated, *whole));
      train::Trainer accumulating(accumulated, factory, {.data_parallel = train::DataParallel::None, .grad_accum = k});
      train::Trainer single(whole, factory, {.data_parallel = train::DataParallel::None});
      DataLoader small(data, {.batch_size = b});
      DataLoader large(data, {.batch_size = k * b});
      auto mse = [](train::Trainer& trainer) {
        return [&trainer](const Batch& batch) { return mse_loss(trainer(batch.inputs), batch.targets); };
      };
      accumulating.fit(small, 5, mse(accumulating));
      single.fit(large, 5, mse(single));
      CHECK(accumulating.steps_done() == 5);
      // The same sums in another order: equal to rounding.
      CHECK(max_difference(*accumulated, *whole) < 1e-12);
      // And training moved the weights (the comparison is not between two untouched models).
      CHECK(max_difference(*accumulated, *make_net(1)) > 1e-3);
    }
  }
}

TEST_CASE("Trainer: gradient clipping scales the step as a hand-computed clip does", "[trainer]") {
  auto data = regression_data(8);
  const double lr = 0.5;
  const double max_norm = 0.02;
  // By hand: one plain backward, the global 2-norm of all gradients, p - lr * g * max_norm / norm.
  auto reference = make_net(3);
  Batch batch = DataLoader(data, {.batch_size = 8}).next();
  mse_loss((*reference)(batch.inputs), batch.targets).backward();
  double squares = 0;
  for (const Tensor& parameter : reference->parameters()) {
    for (double g : parameter.grad().to_vector<double>()) squares += g * g;
  }
  const double norm = std::sqrt(squares);
  REQUIRE(norm > 10 * max_norm);  // the clip must act
  std::vector<std::vector<double>> expected;
  for (const Tensor& parameter : reference->parameters()) {
    std::vector<double> values = parameter.to_vector<double>();
    std::vector<double> gradient = parameter.grad().to_vector<double>();
    for (size_t i = 0; i < values.size(); ++i) values[i] -= lr * gradient[i] * max_norm / (norm + 1e-6);
    expected.push_back(values);
  }

  auto model = make_net(3);
  train::Trainer trainer(model, sgd(lr), {.data_parallel = train::DataParallel::None, .grad_clip = max_norm});
  DataLoader loader(data, {.batch_size = 8});
  trainer.fit(loader, 1, [&](const Batch& b) { return mse_loss(trainer(b.inputs), b.targets); });
  auto parameters = model->parameters();
  for (size_t p = 0; p < parameters.size(); ++p) {
    std::vector<double> values = parameters[p].to_vector<double>();
    for (size_t i = 0; i < values.size(); ++i) REQUIRE(values[i] == Approx(expected[p][i]).margin(1e-12));
  }
}

TEST_CASE("Trainer: the schedule sets each step's learning rate and on_step reports it", "[trainer]") {
  auto data = regression_data(16);
  std::vector<train::StepReport> reports;
  auto model = make_net(5);
  train::Trainer trainer(model, sgd(1.0),
                         {.data_parallel = train::DataParallel::None,
                          .schedule = [](int64_t step) { return 0.1 / static_cast<double>(step + 1); },
                          .on_step = [&](const train::StepReport& report) { reports.push_back(report); }});
  DataLoader loader(data, {.batch_size = 4});
  trainer.fit(loader, 3, [&](const Batch& b) { return mse_loss(trainer(b.inputs), b.targets); });
  REQUIRE(reports.size() == 3);
  for (int64_t i = 0; i < 3; ++i) {
    CHECK(reports[i].step == i + 1);
    CHECK(reports[i].lr == 0.1 / static_cast<double>(i + 1));
    CHECK(reports[i].applied);
    CHECK(std::isfinite(reports[i].loss));
  }
  CHECK(trainer.lr() == 0.1 / 3);
}

TEST_CASE("Trainer: a run checkpointed halfway and resumed continues bitwise like a straight run", "[trainer]") {
  auto directory = scratch_directory("resume");
  auto data = regression_data(40);  // 10 batches of 4: the runs cross an epoch boundary
  const int64_t steps = 14;
  const int64_t half = 6;
  auto options = [&](const std::string& checkpoint) {
    return train::TrainerOptions{.data_parallel = train::DataParallel::None,
                                 .grad_accum = 1,
                                 .grad_clip = 1.0,
                                 .schedule = optim::warmup_cosine_lr({.max_lr = 0.01, .total_steps = steps}),
                                 .checkpoint = checkpoint,
                                 .checkpoint_every = half,
                                 .checkpoint_metadata = {{"note", "resume test"}}};
  };
  auto loss_of = [](train::Trainer& trainer) {
    return [&trainer](const Batch& b) { return mse_loss(trainer(b.inputs), b.targets); };
  };
  // Dropout and a shuffled loader: equal only if the generator and the loader's order come back.
  auto make_loader = [&] { return DataLoader(data, {.batch_size = 4, .shuffle = true, .seed = 9}); };

  auto straight_model = make_net(11, 0.3);
  train::Trainer straight(straight_model, adamw(0.01), options((directory / "straight.safetensors").string()));
  DataLoader straight_loader = make_loader();
  straight.fit(straight_loader, steps, loss_of(straight));

  const std::string halfway = (directory / "halfway.safetensors").string();
  {
    auto first_model = make_net(11, 0.3);
    train::Trainer first(first_model, adamw(0.01), options(halfway));
    DataLoader first_loader = make_loader();
    first.fit(first_loader, half, loss_of(first));  // stops as if interrupted; saves at its last step
  }
  manual_seed(12345);  // a new process's generator would be elsewhere: resume must restore it
  auto resumed_model = make_net(99, 0.3);  // other initial weights: the checkpoint replaces them
  train::Trainer resumed(resumed_model, adamw(0.01), options((directory / "resumed.safetensors").string()));
  DataLoader resumed_loader = make_loader();
  train::TrainingState state = resumed.resume(halfway, resumed_loader);
  CHECK(state.step == half);
  CHECK(state.metadata.at("note") == "resume test");
  CHECK(resumed.steps_done() == half);
  resumed.fit(resumed_loader, steps, loss_of(resumed));

  CHECK(bitwise_equal(*straight_model, *resumed_model));
  CHECK(resumed_loader.state() == straight_loader.state());
  // The final checkpoints agree to the byte: parameters, optimizer state, step, generator, loader.
  auto bytes = [](const std::filesystem::path& path) {
    std::ifstream file(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(file), {});
  };
  CHECK(bytes(directory / "straight.safetensors") == bytes(directory / "resumed.safetensors"));
  std::filesystem::remove_all(directory);
}

TEST_CASE("Trainer: a sharded checkpoint directory without dist::init raises, naming the need", "[trainer]") {
  auto directory = scratch_directory("rotation");
  auto data = regression_data(16);
  std::vector<std::string> saved;
  auto model = make_net(2);
  train::Trainer trainer(model, sgd(0.1),
                         {.data_parallel = train::DataParallel::None,
                          .checkpoint = directory.string(),
                          .checkpoint_every = 2,
                          .keep_checkpoints = 2,
                          .on_checkpoint = [&](const std::string& path, int64_t) { saved.push_back(path); }});
  DataLoader loader(data, {.batch_size = 4});
  // Rotated saves are sharded directories, which need dist::init (tests/dist/ tests them).
  CHECK_THROWS_WITH(trainer.fit(loader, 2, [&](const Batch& b) { return mse_loss(trainer(b.inputs), b.targets); }),
                    Catch::Contains("needs dist::init()"));
  CHECK(saved.empty());
  std::filesystem::remove_all(directory);
}

TEST_CASE("Trainer: options out of range raise dtrain::Error naming them", "[trainer]") {
  auto model = make_net(4);
  using train::DataParallel;
  CHECK_THROWS_WITH(train::Trainer(model, sgd(0.1), {.data_parallel = DataParallel::None, .grad_accum = 0}),
                    Catch::Contains("grad_accum must be >= 1, got 0"));
  CHECK_THROWS_WITH(train::Trainer(model, sgd(0.1), {.data_parallel = DataParallel::Zero, .zero_stage = 4}),
                    Catch::Contains("zero_stage must be 0, 1, 2 or 3, got 4"));
  CHECK_THROWS_WITH(train::Trainer(model, sgd(0.1), {.data_parallel = DataParallel::None, .grad_clip = -1}),
                    Catch::Contains("grad_clip must be >= 0"));
  CHECK_THROWS_WITH(train::Trainer(model, sgd(0.1), {.data_parallel = DataParallel::None, .precision = kBFloat16}),
                    Catch::Contains("use DataParallel::Zero"));
  // make_net is float64: mixed precision is bf16/fp16 over float32 (raised before DDP needs dist::init).
  CHECK_THROWS_WITH(train::Trainer(model, sgd(0.1), {.data_parallel = DataParallel::DDP, .precision = kFloat32}),
                    Catch::Contains("precision float32 for a float64 model"));
  CHECK_THROWS_WITH(train::Trainer(nullptr, sgd(0.1), {.data_parallel = DataParallel::None}),
                    Catch::Contains("expected a model"));
  CHECK_THROWS_WITH(train::Trainer(model, nullptr, {.data_parallel = DataParallel::None}),
                    Catch::Contains("expected an optimizer factory"));
}

TEST_CASE("Trainer: without data parallelism the description names the dtype", "[trainer]") {
  train::Trainer trainer(make_net(1), sgd(0.1), {.data_parallel = train::DataParallel::None});
  CHECK(trainer.description() == "no data parallelism, fp64");
  CHECK(trainer.optimizer_name() == "SGD");
  CHECK_FALSE(trainer.forward_is_collective());
}
