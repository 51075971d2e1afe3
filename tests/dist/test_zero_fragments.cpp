// ZeroOptimizer's sharded state: every rank's fragments together tile every tensor exactly once
// (no padding saved, nothing missing), and loading them into a fresh optimizer continues the
// training bitwise at the same stage and world size, and to rounding at another stage.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dist/checkpoint/whole_state.h"
#include "tests/dist/zero_test_support.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;

namespace {

void train_steps(ZeroOptimizer& zero, int first_step, int steps) {
  const int rank = world().rank();
  for (int step = first_step; step < first_step + steps; ++step) {
    Batch whole = gpt_batch(step, 2 * world().size(), kFloat64);
    Batch mine = rows_of(whole, 2 * rank, 2);
    zero.zero_grad();
    zero.backward(cross_entropy(zero(mine.inputs), mine.targets));
    zero.step();
  }
}

std::unique_ptr<ZeroOptimizer> make_zero(int stage, double bucket_cap_mb, uint64_t seed) {
  return std::make_unique<ZeroOptimizer>(make_gpt(kFloat64, seed), zero_optimizer<optim::AdamW>(kAdamW),
                                         ZeroOptions{.stage = stage, .bucket_cap_mb = bucket_cap_mb});
}

}  // namespace

TEST_CASE("ZeRO fragments tile every tensor once and reload bitwise at the same stage", "[zero][fragments]") {
  for (int stage : {0, 1, 2, 3}) {
    INFO("stage " << stage << ", " << world().size() << " ranks");
    std::unique_ptr<ZeroOptimizer> original = make_zero(stage, 0.0, 7);
    train_steps(*original, 0, 4);
    InMemoryFragments saved(all_ranks_fragments(original->state_fragments()));
    CHECK(saved.tiles_exactly());
    // Names independent of the sharding: a value and two Adam moments and a step per parameter,
    // and the hyper-parameters of the one group.
    const std::vector<NamedTensor> parameters = original->module().named_parameters();
    for (const auto& [name, parameter] : parameters) {
      CHECK(saved.contains("model." + name));
      CHECK(saved.shape("model." + name) == parameter.shape());
      CHECK(saved.contains("optimizer.state." + name + ".exp_avg"));
      CHECK(saved.contains("optimizer.state." + name + ".exp_avg_sq"));
      CHECK(saved.read("optimizer.state." + name + ".step", 0, 1).item() == 4.0);
    }
    CHECK(saved.read("optimizer.param_groups.0.lr", 0, 1).item() == kAdamW.lr);
    CHECK(saved.shape("optimizer.param_groups.0.params").numel() == static_cast<int64_t>(parameters.size()));
    StateDict values = original->full_parameters();
    for (const auto& [name, value] : values) {
      CHECK(relative_difference(saved.read("model." + name, 0, value.numel()), value.reshape({value.numel()})) == 0.0);
    }

    std::unique_ptr<ZeroOptimizer> reloaded = make_zero(stage, 0.0, 99);  // another initialisation
    reloaded->load_state_fragments(saved);
    train_steps(*original, 4, 3);
    train_steps(*reloaded, 4, 3);
    CHECK(max_difference(entries(reloaded->full_parameters()), entries(original->full_parameters()), false, nullptr) ==
          0.0);
  }
}

TEST_CASE("ZeRO fragments saved at one stage load at another", "[zero][fragments]") {
  std::unique_ptr<ZeroOptimizer> original = make_zero(1, 25.0, 7);
  train_steps(*original, 0, 4);
  InMemoryFragments saved(all_ranks_fragments(original->state_fragments()));
  for (int stage : {0, 2, 3}) {
    std::unique_ptr<ZeroOptimizer> other = make_zero(stage, 0.0, 99);
    other->load_state_fragments(saved);
    std::string worst;
    const double difference = max_difference(entries(other->full_parameters()), entries(original->full_parameters()), false, &worst);
    INFO("loaded at stage " << stage << ", worst '" << worst << "'");
    CHECK(difference == 0.0);
    for (size_t i = 0; i < other->optimizer().num_parameters(); ++i) CHECK(other->optimizer().state(i).step == 4);
    train_steps(*other, 4, 3);
  }
  train_steps(*original, 4, 3);
  // The three continued from the same state on the same data: equal to rounding (their
  // reductions group differently).
  for (int stage : {0, 2, 3}) {
    std::unique_ptr<ZeroOptimizer> other = make_zero(stage, 0.0, 99);
    other->load_state_fragments(saved);
    train_steps(*other, 4, 3);
    INFO("stage " << stage);
    CHECK(max_difference(entries(other->full_parameters()), entries(original->full_parameters()), false, nullptr) <=
          1e-12);
  }
}

TEST_CASE("A plain model and optimizer's state loads into ZeRO under the same names", "[zero][fragments]") {
  // One process's AdamW on the whole batch (every rank runs it alike), saved whole by the
  // checkpoint module's naming, continues as ZeRO on N ranks with a share of the batch each.
  std::shared_ptr<Module> plain = make_gpt(kFloat64, 7);
  optim::AdamW plain_optimizer(plain->parameters(), kAdamW);
  auto plain_steps = [&](int first_step, int steps) {
    for (int step = first_step; step < first_step + steps; ++step) {
      Batch whole = gpt_batch(step, 2 * world().size(), kFloat64);
      plain_optimizer.zero_grad();
      cross_entropy((*plain)(whole.inputs), whole.targets).backward();
      plain_optimizer.step();
    }
  };
  plain_steps(0, 4);
  InMemoryFragments saved(whole_state_fragments(*plain, plain_optimizer));
  std::vector<std::unique_ptr<ZeroOptimizer>> zeros;
  for (int stage : {1, 3}) {
    zeros.push_back(make_zero(stage, 0.0, 99));
    zeros.back()->load_state_fragments(saved);
    CHECK(max_difference(entries(zeros.back()->full_parameters()), plain->named_parameters(), false, nullptr) == 0.0);
  }
  plain_steps(4, 3);
  for (auto& zero : zeros) {
    train_steps(*zero, 4, 3);
    INFO("stage " << zero->stage());
    CHECK(max_difference(entries(zero->full_parameters()), plain->named_parameters(), false, nullptr) <= 1e-9);
  }
}
