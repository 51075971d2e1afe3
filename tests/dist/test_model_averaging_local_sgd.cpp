// Post-local SGD (dist/model_averaging/post_local_sgd.h) driving DDP as a training loop would:
// with period 1 it is DDP bitwise (AdamW, several steps); with period 2 and plain SGD each average
// equals the mean of every rank's own two local steps, which every rank recomputes here by
// training one replica per rank on that rank's rows; the first start_step steps synchronise
// gradients (they equal one process on the whole batch).
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/profiler.h"
#include "dist/model_averaging/model_averaging.h"
#include "optim/sgd.h"
#include "tests/dist/ddp_test_support.h"
#include "tests/dist/test_model_averaging_support.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;

namespace {

constexpr int64_t kRowsPerRank = 3;

// Rank `rank`'s rows of step `step`'s whole batch.
Batch rows_of_rank(int64_t step, int rank, DType dtype) {
  return rows_of(mlp_batch(step, kRowsPerRank * world().size(), dtype), rank * kRowsPerRank, kRowsPerRank);
}

// One step of the loop the issue describes: backward under no_sync unless the averager says the
// step synchronises gradients, the optimizer step, then after_step.
void train_step(DistributedDataParallel& ddp, optim::Optimizer& optimizer, PostLocalSgd& local_sgd, int64_t step,
                const Batch& batch) {
  optimizer.zero_grad();
  {
    std::optional<NoSyncGuard> local;
    if (!local_sgd.synchronizes_gradients(step)) local.emplace(ddp);
    cross_entropy(ddp(batch.inputs), batch.targets).backward();
  }
  optimizer.step();
  local_sgd.after_step(step + 1);
}

// A plain training step of one process.
void local_step(Module& model, optim::Optimizer& optimizer, const Batch& batch) {
  optimizer.zero_grad();
  cross_entropy(model(batch.inputs), batch.targets).backward();
  optimizer.step();
}

// The mean over replicas, element by element, in float64.
std::vector<double> mean_of(const std::vector<std::vector<double>>& replicas) {
  std::vector<double> mean(replicas.front().size(), 0.0);
  for (const std::vector<double>& values : replicas) {
    for (size_t i = 0; i < mean.size(); ++i) mean[i] += values[i];
  }
  for (double& value : mean) value /= static_cast<double>(replicas.size());
  return mean;
}

}  // namespace

TEST_CASE("local SGD with period 1 equals DDP bitwise, with AdamW, at every step", "[model-averaging]") {
  const int rank = world().rank();
  for (int64_t start_step : {int64_t{0}, int64_t{3}}) {
    INFO("start_step " << start_step);
    auto ddp_model = make_mlp(kFloat32, 21);
    auto local_model = make_mlp(kFloat32, 21);
    DistributedDataParallel ddp(ddp_model);
    DistributedDataParallel local_ddp(local_model);
    optim::AdamWOptions adamw{.lr = 1e-2, .weight_decay = 0.1};
    optim::AdamW ddp_optimizer(ddp_model->parameters(), adamw);
    optim::AdamW local_optimizer(local_model->parameters(), adamw);
    PostLocalSgd local_sgd(local_model->parameters(), nullptr, {.start_step = start_step, .period = 1});
    for (int64_t step = 0; step < 6; ++step) {
      INFO("step " << step);
      CHECK(local_sgd.synchronizes_gradients(step));
      CHECK_FALSE(local_sgd.averages_after(step + 1));
      Batch batch = rows_of_rank(step, rank, kFloat32);
      ddp_optimizer.zero_grad();
      cross_entropy(ddp(batch.inputs), batch.targets).backward();
      ddp_optimizer.step();
      train_step(local_ddp, local_optimizer, local_sgd, step, batch);
      // Bitwise: an average of equal float32 values over 3 ranks ((x + x + x) / 3) would not be.
      std::vector<double> expected = flat_parameters(*ddp_model);
      CHECK(flat_parameters(*local_model) == expected);
      CHECK(equal_on_every_rank(expected));
    }
  }
}

TEST_CASE("local SGD with period 2 averages each rank's two local SGD steps; between averages ranks differ",
          "[model-averaging]") {
  const int ranks = world().size();
  const int rank = world().rank();
  constexpr uint64_t kSeed = 33;
  auto model = make_mlp(kFloat64, kSeed);
  DistributedDataParallel ddp(model);
  optim::SGD optimizer(model->parameters(), {.lr = 0.2});
  PostLocalSgd local_sgd(model->parameters(), nullptr, {.period = 2, .bucket_cap_mb = 0.0});  // a bucket per tensor

  // Every rank's replica, trained here on that rank's rows: the values the ranks compute apart.
  std::vector<std::shared_ptr<Module>> replicas;
  std::vector<std::unique_ptr<optim::SGD>> replica_optimizers;
  for (int other = 0; other < ranks; ++other) {
    replicas.push_back(make_mlp(kFloat64, kSeed));
    replica_optimizers.push_back(std::make_unique<optim::SGD>(replicas.back()->parameters(), optim::SGDOptions{.lr = 0.2}));
  }

  for (int64_t step = 0; step < 6; ++step) {
    INFO("step " << step);
    CHECK_FALSE(local_sgd.synchronizes_gradients(step));
    train_step(ddp, optimizer, local_sgd, step, rows_of_rank(step, rank, kFloat64));
    std::vector<std::vector<double>> expected_per_rank;
    for (int other = 0; other < ranks; ++other) {
      local_step(*replicas[other], *replica_optimizers[other], rows_of_rank(step, other, kFloat64));
      expected_per_rank.push_back(flat_parameters(*replicas[other]));
    }
    std::vector<double> actual = flat_parameters(*model);
    if ((step + 1) % 2 == 1) {
      // Mid-period: this rank's own local step, exactly; the ranks differ (their rows do).
      CHECK_FALSE(local_sgd.parameters_synchronized(step + 1));
      CHECK(actual == expected_per_rank[rank]);
      if (ranks > 1) CHECK_FALSE(equal_on_every_rank(actual));
    } else {
      // The average: the mean of the replicas (float rounding of the all-reduce's sum aside),
      // the same bits on every rank.
      CHECK(local_sgd.parameters_synchronized(step + 1));
      std::vector<double> expected = mean_of(expected_per_rank);
      CHECK(relative_difference(actual, expected) <= 1e-14);
      CHECK(equal_on_every_rank(actual));
      if (ranks > 1) CHECK(relative_difference(expected, expected_per_rank[0]) > 1e-6);  // averaging changed them
      // The replicas go on from the average, as the ranks do.
      for (auto& replica : replicas) set_parameters(*replica, actual);
    }
  }
}

TEST_CASE("local SGD synchronises gradients for the first start_step steps, then averages every period",
          "[model-averaging]") {
  const int ranks = world().size();
  const int rank = world().rank();
  constexpr int64_t kStart = 2;
  constexpr int64_t kPeriod = 3;
  auto model = make_mlp(kFloat64, 44);
  DistributedDataParallel ddp(model);
  optim::SGD optimizer(model->parameters(), {.lr = 0.2});
  PostLocalSgd local_sgd(model->parameters(), nullptr, {.start_step = kStart, .period = kPeriod});

  // The schedule: steps 0, 1 synchronise; averages after 5 and 8 steps (2 + 3, 2 + 6).
  for (int64_t steps_done = 0; steps_done < 12; ++steps_done) {
    INFO("steps done " << steps_done);
    CHECK(local_sgd.synchronizes_gradients(steps_done) == (steps_done < kStart));
    CHECK(local_sgd.averages_after(steps_done) == (steps_done == 5 || steps_done == 8 || steps_done == 11));
  }

  // The synchronous steps equal one process on the whole batch; the local ones each rank's own.
  auto whole_batch = make_mlp(kFloat64, 44);
  optim::SGD whole_batch_optimizer(whole_batch->parameters(), {.lr = 0.2});
  std::vector<std::shared_ptr<Module>> replicas;
  std::vector<std::unique_ptr<optim::SGD>> replica_optimizers;
  for (int64_t step = 0; step < 5; ++step) {
    INFO("step " << step);
    train_step(ddp, optimizer, local_sgd, step, rows_of_rank(step, rank, kFloat64));
    std::vector<double> actual = flat_parameters(*model);
    if (step < kStart) {
      local_step(*whole_batch, whole_batch_optimizer, mlp_batch(step, kRowsPerRank * ranks, kFloat64));
      CHECK(relative_difference(actual, flat_parameters(*whole_batch)) <= 1e-12);
      CHECK(equal_on_every_rank(actual));
      if (step + 1 == kStart) {
        for (int other = 0; other < ranks; ++other) {
          replicas.push_back(make_mlp(kFloat64, 0));
          set_parameters(*replicas.back(), actual);
          replica_optimizers.push_back(
              std::make_unique<optim::SGD>(replicas.back()->parameters(), optim::SGDOptions{.lr = 0.2}));
        }
      }
      continue;
    }
    std::vector<std::vector<double>> expected_per_rank;
    for (int other = 0; other < ranks; ++other) {
      local_step(*replicas[other], *replica_optimizers[other], rows_of_rank(step, other, kFloat64));
      expected_per_rank.push_back(flat_parameters(*replicas[other]));
    }
    if (step + 1 < 5) {
      CHECK(actual == expected_per_rank[rank]);
      if (ranks > 1) CHECK_FALSE(equal_on_every_rank(actual));
    } else {
      CHECK(relative_difference(actual, mean_of(expected_per_rank)) <= 1e-14);
      CHECK(equal_on_every_rank(actual));
    }
  }
}

TEST_CASE("PostLocalSgd refuses a bad schedule, and its state records the schedule", "[model-averaging]") {
  auto model = make_mlp(kFloat32, 1);
  CHECK_THROWS_WITH(PostLocalSgd(model->parameters(), nullptr, {.period = 0}),
                    Catch::Contains("expected a period >= 1 (local steps between averages; 1 is DDP), got 0"));
  CHECK_THROWS_WITH(PostLocalSgd(model->parameters(), nullptr, {.start_step = -2}),
                    Catch::Contains("expected start_step >= 0, got -2"));
  CHECK_THROWS_WITH(PostLocalSgd(model->parameters(), nullptr, {.bucket_cap_mb = -1.0}),
                    Catch::Contains("bucket_cap_mb >= 0 MB, got -1"));
  PostLocalSgd local_sgd(model->parameters(), nullptr, {.start_step = 4, .period = 8});
  CHECK_THROWS_WITH(local_sgd.after_step(0), Catch::Contains("expected the number of steps done (>= 1), got 0"));
  optim::StateDict state = local_sgd.state_dict();
  CHECK(state.at("start_step").item() == 4.0);
  CHECK(state.at("period").item() == 8.0);
  PostLocalSgd same(model->parameters(), nullptr, {.start_step = 4, .period = 8});
  same.load_state_dict(state);
  PostLocalSgd other(model->parameters(), nullptr, {.start_step = 4, .period = 2});
  CHECK_THROWS_WITH(other.load_state_dict(state), Catch::Contains("period: the state has 8, this PostLocalSgd 2"));
}

TEST_CASE("local SGD averages in one all-reduce per flat bucket, and only when a period ends", "[model-averaging]") {
  const int ranks = world().size();
  for (double bucket_cap_mb : {25.0, 0.0}) {
    INFO("bucket_cap_mb " << bucket_cap_mb);
    auto model = make_mlp(kFloat32, 5);
    PostLocalSgd local_sgd(model->parameters(), nullptr, {.start_step = 1, .period = 2, .bucket_cap_mb = bucket_cap_mb});
    for (int64_t steps_done = 1; steps_done <= 5; ++steps_done) {
      INFO("steps done " << steps_done);
      profiler::Profile profile;
      local_sgd.after_step(steps_done);
      profile.stop();
      int64_t all_reduces = 0;
      for (const profiler::Event& event : profile.events()) {
        if (event.kind == profiler::EventKind::Collective && event.name == "all_reduce") ++all_reduces;
      }
      // Averages after 3 and 5 steps: the MLP's 6 tensors in one bucket, or one bucket each; a
      // world of one has nothing to average.
      const bool averages = steps_done == 3 || steps_done == 5;
      CHECK(local_sgd.averages_after(steps_done) == averages);
      CHECK(all_reduces == (averages && ranks > 1 ? (bucket_cap_mb > 0 ? 1 : 6) : 0));
    }
  }
}
