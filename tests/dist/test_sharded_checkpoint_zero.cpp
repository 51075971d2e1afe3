// ZeRO and plain training meet in sharded checkpoints: ZeroOptimizer's fragments saved at the
// job's size, at stages 0-3, load into a plain model and AdamW at every smaller size; a plain
// model and AdamW saved at every size load into ZeRO at every stage, and train on as the plain
// run does (to rounding: ZeRO sums gradients in another order); and the resharding matrix —
// ZeRO saved by N ranks at stage s resumes on M ranks at stage t, N, M = 1 .. the job's size.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/dist/test_sharded_checkpoint_support.h"
#include "tests/dist/zero_test_support.h"
#include "tests/support/velocity_optimizer.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;

namespace {

// Steps on the same global batch of 8 rows whatever the group's size (1, 2 or 4 rows per rank
// divide it; 3 ranks take 2 rows each of a batch of 6 instead).
void train_zero(ZeroOptimizer& zero, int first_step, int steps, ProcessGroup& group = world()) {
  const int64_t rows = group.size() == 3 ? 2 : 8 / group.size();
  for (int step = first_step; step < first_step + steps; ++step) {
    Batch whole = gpt_batch(step, rows * group.size(), kFloat64);
    Batch mine = rows_of(whole, rows * group.rank(), rows);
    zero.zero_grad();
    zero.backward(cross_entropy(zero(mine.inputs), mine.targets));
    zero.step();
  }
}

void train_plain(Module& model, optim::Optimizer& optimizer, int first_step, int steps, int64_t rows) {
  for (int step = first_step; step < first_step + steps; ++step) {
    Batch whole = gpt_batch(step, rows, kFloat64);
    optimizer.zero_grad();
    cross_entropy(model(whole.inputs), whole.targets).backward();
    optimizer.step();
  }
}

}  // namespace

TEST_CASE("A ZeRO checkpoint of any stage loads into a plain model and AdamW at any size", "[sharded_checkpoint][zero]") {
  auto groups = first_ranks_groups();
  for (int stage : {0, 1, 2, 3}) {
    ZeroOptimizer zero(make_gpt(kFloat64, 7), zero_optimizer<optim::AdamW>(kAdamW), {.stage = stage});
    train_zero(zero, 0, 3);
    SharedDirectory dir;
    save_sharded_checkpoint(dir.path(), zero.state_fragments(), {.step = 3}, &world());
    StateDict values = zero.full_parameters();
    for (int readers = 1; readers <= world().size(); ++readers) {
      ProcessGroup* reading = groups[static_cast<size_t>(readers)].get();
      if (reading == nullptr) continue;
      INFO("stage " << stage << ", saved by " << world().size() << ", loaded by " << readers);
      std::shared_ptr<Module> model = make_gpt(kFloat64, 99);
      optim::AdamW adamw(model->parameters(), kAdamW);
      load_whole_state(ShardedCheckpoint::open(dir.path(), reading), *model, adamw, reading);
      StateDict loaded = model->state_dict();
      for (const auto& [name, value] : values) {
        INFO(name);
        CHECK(same_bytes(loaded.at(name), value));
      }
      CHECK(adamw.state(0).step == 3);
    }
    world().barrier()->wait();
  }
}

TEST_CASE("A plain checkpoint saved at any size loads into ZeRO at every stage and trains on", "[sharded_checkpoint][zero]") {
  auto groups = first_ranks_groups();
  std::shared_ptr<Module> plain = make_gpt(kFloat64, 7);
  optim::AdamW adamw(plain->parameters(), kAdamW);
  const int64_t rows = world().size() == 3 ? 6 : 8;
  train_plain(*plain, adamw, 0, 3, rows);
  std::shared_ptr<Module> continued = make_gpt(kFloat64, 7);
  optim::AdamW continued_adamw(continued->parameters(), kAdamW);
  train_plain(*continued, continued_adamw, 0, 5, rows);
  for (int saved = 1; saved <= world().size(); ++saved) {
    SharedDirectory dir;
    if (ProcessGroup* saving = groups[static_cast<size_t>(saved)].get()) {
      save_whole_state(dir.path(), *plain, adamw, {.step = 3}, saving);
    }
    world().barrier()->wait();
    for (int stage : {0, 1, 2, 3}) {
      INFO("saved by " << saved << ", loaded at stage " << stage << " by " << world().size());
      ZeroOptimizer zero(make_gpt(kFloat64, 99), zero_optimizer<optim::AdamW>(kAdamW), {.stage = stage});
      zero.load_state_fragments(ShardedCheckpoint::open(dir.path(), &world()));
      StateDict values = zero.full_parameters();
      for (const auto& [name, value] : plain->state_dict()) CHECK(same_bytes(values.at(name), value));
      train_zero(zero, 3, 2);
      CHECK(max_difference(entries(zero.full_parameters()), continued->named_parameters(), true, nullptr) < 1e-9);
    }
  }
}

TEST_CASE("The resharding matrix: ZeRO saved by N ranks at stage s resumes on M ranks at stage t",
          "[sharded_checkpoint][zero][matrix]") {
  auto groups = first_ranks_groups();
  const int world_size = world().size();
  for (int saved = 1; saved <= world_size; ++saved) {
    for (int saved_stage : {0, 1, 2, 3}) {
      SharedDirectory dir;
      if (std::shared_ptr<ProcessGroup> saving = groups[static_cast<size_t>(saved)]) {
        ZeroOptimizer zero(make_gpt(kFloat64, 7), zero_optimizer<optim::AdamW>(kAdamW),
                           {.stage = saved_stage, .process_group = saving});
        train_zero(zero, 0, 2, *saving);
        save_sharded_checkpoint(dir.path(), zero.state_fragments(), {.step = 2}, saving.get());
      }
      world().barrier()->wait();
      for (int loaded = 1; loaded <= world_size; ++loaded) {
        std::shared_ptr<ProcessGroup> loading = groups[static_cast<size_t>(loaded)];
        if (!loading) continue;
        for (int loaded_stage : {0, 1, 2, 3}) {
          INFO("saved by " << saved << " ranks at stage " << saved_stage << ", loaded by " << loaded
                           << " at stage " << loaded_stage);
          ZeroOptimizer zero(make_gpt(kFloat64, 99), zero_optimizer<optim::AdamW>(kAdamW),
                             {.stage = loaded_stage, .process_group = loading});
          ShardedCheckpoint checkpoint = ShardedCheckpoint::open(dir.path(), loading.get());
          zero.load_state_fragments(checkpoint);
          // What it would save now is what was saved, element for element.
          for (const TensorFragment& fragment : zero.state_fragments()) {
            INFO(fragment.name << " [" << fragment.begin << ", " << fragment.end() << ")");
            CHECK(same_bytes(checkpoint.read(fragment.name, fragment.begin, fragment.end()), fragment.data));
          }
        }
      }
      world().barrier()->wait();
    }
  }
}

TEST_CASE("Optimizer state under names of the optimizer's own survives ZeRO, resharded and plain checkpoints",
          "[sharded_checkpoint][zero]") {
  using dtrain::testing::VelocityOptimizer;
  using dtrain::testing::VelocityOptions;
  const std::vector<std::string> state_names{"squared_gradient_sum", "velocity"};
  auto groups = first_ranks_groups();
  for (int stage : {0, 1, 2, 3}) {
    INFO("saved at stage " << stage << " by " << world().size());
    SharedDirectory dir;
    {
      ZeroOptimizer zero(make_gpt(kFloat64, 7), zero_optimizer<VelocityOptimizer>(VelocityOptions{}), {.stage = stage});
      train_zero(zero, 0, 2);
      save_sharded_checkpoint(dir.path(), zero.state_fragments(), {.step = 2}, &world());
    }
    ShardedCheckpoint checkpoint = ShardedCheckpoint::open(dir.path(), &world());
    REQUIRE(checkpoint.contains("optimizer.state.blocks.0.mlp.fc.weight.velocity"));

    // Same size and stage: the resumed run is bitwise the uninterrupted one, so the loaded
    // velocity and sum were the saved ones (zeros instead would change every later step).
    ZeroOptimizer straight(make_gpt(kFloat64, 7), zero_optimizer<VelocityOptimizer>(VelocityOptions{}), {.stage = stage});
    train_zero(straight, 0, 4);
    ZeroOptimizer resumed(make_gpt(kFloat64, 99), zero_optimizer<VelocityOptimizer>(VelocityOptions{}), {.stage = stage});
    resumed.load_state_fragments(checkpoint);
    train_zero(resumed, 2, 2);
    StateDict expected = straight.full_parameters();
    for (const auto& [name, value] : resumed.full_parameters()) {
      INFO(name);
      CHECK(same_bytes(value, expected.at(name)));
    }

    // Another size and the next stage: every piece this rank holds gets both state tensors back,
    // element for element as saved.
    for (int loaded = 1; loaded <= world().size(); ++loaded) {
      std::shared_ptr<ProcessGroup> loading = groups[static_cast<size_t>(loaded)];
      if (!loading) continue;
      INFO("loaded by " << loaded << " at stage " << (stage + 1) % 4);
      ZeroOptimizer zero(make_gpt(kFloat64, 99), zero_optimizer<VelocityOptimizer>(VelocityOptions{}),
                         {.stage = (stage + 1) % 4, .process_group = loading});
      zero.load_state_fragments(ShardedCheckpoint::open(dir.path(), loading.get()));
      size_t trained_pieces = 0;
      std::vector<size_t> state_pieces(state_names.size(), 0);
      for (const TensorFragment& fragment : zero.state_fragments()) {
        const bool is_state = fragment.name.rfind("optimizer.state.", 0) == 0;
        if (!is_state && fragment.name.rfind("model.", 0) == 0 && checkpoint.contains(
                "optimizer.state." + fragment.name.substr(6) + ".velocity")) {
          ++trained_pieces;
        }
        for (size_t k = 0; k < state_names.size(); ++k) {
          const std::string suffix = "." + state_names[k];
          if (is_state && fragment.name.size() > suffix.size() &&
              fragment.name.compare(fragment.name.size() - suffix.size(), suffix.size(), suffix) == 0) {
            ++state_pieces[k];
            INFO(fragment.name << " [" << fragment.begin << ", " << fragment.end() << ")");
            CHECK(same_bytes(checkpoint.read(fragment.name, fragment.begin, fragment.end()), fragment.data));
          }
        }
      }
      for (size_t k = 0; k < state_names.size(); ++k) {
        INFO(state_names[k]);
        CHECK(state_pieces[k] == trained_pieces);
      }
    }

    // A plain model and the same optimizer: every parameter's state comes back whole.
    std::shared_ptr<Module> plain = make_gpt(kFloat64, 99);
    VelocityOptimizer optimizer(plain->parameters(), {});
    load_whole_state(ShardedCheckpoint::open(dir.path(), &world()), *plain, optimizer, &world());
    for (size_t p = 0; p < optimizer.num_parameters(); ++p) {
      INFO("parameter " << p);
      CHECK(optimizer.state(p).step == 2);
      CHECK(optimizer.state(p).tensors.size() == state_names.size());
    }
    world().barrier()->wait();
  }
}

TEST_CASE("ZeRO loading a checkpoint whose shard only the last rank reads is damaged: every rank raises",
          "[sharded_checkpoint][zero][errors]") {
  ZeroOptimizer zero(make_gpt(kFloat64, 7), zero_optimizer<optim::AdamW>(kAdamW), {.stage = 2});
  train_zero(zero, 0, 2);
  SharedDirectory dir;
  save_sharded_checkpoint(dir.path(), zero.state_fragments(), {.step = 2}, &world());
  const std::string last_shard = read_index(dir.path()).files.back().name;
  world().barrier()->wait();
  if (world().rank() == 0) std::filesystem::remove(dir / last_shard);
  world().barrier()->wait();

  // A second optimizer, at the same size and stage: each rank reads its own pieces, so at more
  // than one rank only the last one opens the missing file.
  ZeroOptimizer fresh(make_gpt(kFloat64, 99), zero_optimizer<optim::AdamW>(kAdamW), {.stage = 2});
  StateDict before = fresh.full_parameters();
  ShardedCheckpoint checkpoint = ShardedCheckpoint::open(dir.path());
  CHECK_THROWS_WITH(fresh.load_state_fragments(checkpoint),
                    Catch::Matchers::Contains("ZeroOptimizer.load_state_fragments") &&
                        Catch::Matchers::Contains(last_shard));
  // Nothing changed on any rank, and the ranks still train in step.
  StateDict after = fresh.full_parameters();
  for (const auto& [name, value] : before) {
    INFO(name);
    CHECK(same_bytes(after.at(name), value));
  }
  train_zero(fresh, 0, 1);
}
