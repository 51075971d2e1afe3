// DDP's user errors: models that differ across ranks and parameters that get no gradient. Each
// must raise a dtrain::Error on every rank, naming what is wrong, within seconds — never leave
// some ranks waiting in a collective the others will not enter (CTest's TIMEOUT catches a hang).
#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/dist/ddp_test_support.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;
using Catch::Matchers::Contains;

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// An MLP whose last layer has `classes` outputs, and optionally one extra layer.
std::shared_ptr<Module> mlp_with(int64_t classes, bool extra_layer) {
  manual_seed(1);
  auto model = std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
      std::make_shared<Linear>(kMlpInputs, 10), std::make_shared<ReLU>(), std::make_shared<Linear>(10, classes)});
  if (extra_layer) model->push_back(std::make_shared<Linear>(classes, classes));
  model->to(kFloat64);
  return model;
}

// A trunk and two heads; head_b takes part only while use_b is set.
class TwoHeads : public Module {
 public:
  TwoHeads() : Module("TwoHeads") {
    manual_seed(2);
    trunk_ = register_module("trunk", std::make_shared<Linear>(kMlpInputs, 8));
    head_a_ = register_module("head_a", std::make_shared<Linear>(8, kMlpClasses));
    head_b_ = register_module("head_b", std::make_shared<Linear>(8, kMlpClasses));
    to(kFloat64);
  }
  bool use_b = true;
  const std::shared_ptr<Linear>& head_b() const { return head_b_; }

 protected:
  Tensor forward(const Tensor& x) override {
    Tensor hidden = (*trunk_)(x).relu();
    Tensor output = (*head_a_)(hidden);
    return use_b ? output + (*head_b_)(hidden) : output;
  }

 private:
  std::shared_ptr<Linear> trunk_;
  std::shared_ptr<Linear> head_a_;
  std::shared_ptr<Linear> head_b_;
};

Batch rank_rows(int64_t step, int rank) {
  Batch whole = mlp_batch(step, 2 * world().size(), kFloat64);
  return rows_of(whole, 2 * rank, 2);
}

}  // namespace

TEST_CASE("DDP raises on every rank when one rank's parameter has another shape", "[ddp]") {
  if (world().size() == 1) return;  // one rank cannot disagree with itself
  const bool odd_one = world().rank() == world().size() - 1;
  auto start = std::chrono::steady_clock::now();
  std::shared_ptr<Module> model = mlp_with(odd_one ? 5 : kMlpClasses, false);
  std::string expected_rank = "on rank " + std::to_string(world().size() - 1);
  CHECK_THROWS_WITH(DistributedDataParallel(model),
                    Contains("'2.weight' [4, 10] float64 on rank 0") && Contains("'2.weight' [5, 10] float64") &&
                        Contains(expected_rank));
  CHECK(seconds_since(start) < 10.0);
  // Nothing was left half-done: the ranks still communicate in step.
  CHECK(gather_scalar(1.0).size() == static_cast<size_t>(world().size()));
}

TEST_CASE("DDP raises on every rank when one rank has an extra parameter", "[ddp]") {
  if (world().size() == 1) return;
  const bool odd_one = world().rank() == 1;
  auto start = std::chrono::steady_clock::now();
  std::shared_ptr<Module> model = mlp_with(kMlpClasses, odd_one);
  CHECK_THROWS_WITH(DistributedDataParallel(model),
                    Contains("tensor #4 is nothing") && Contains("'3.weight' [4, 4] float64 on rank 1"));
  CHECK(seconds_since(start) < 10.0);
}

TEST_CASE("DDP raises on every rank when the ranks' models differ only in attention heads (same shapes)", "[ddp]") {
  if (world().size() == 1) return;
  const int odd_one = world().size() - 1;
  auto start = std::chrono::steady_clock::now();
  manual_seed(3);
  auto model = std::make_shared<CausalSelfAttention>(
      AttentionConfig{.d_model = 8, .heads = world().rank() == odd_one ? 2 : 4, .dropout = 0.0});
  model->to(kFloat64);
  CHECK_THROWS_WITH(DistributedDataParallel(model),
                    Contains("rank " + std::to_string(odd_one) + " has heads=2, rank 0 heads=4") &&
                        Contains("same model and training settings"));
  // The run's own settings too (the examples pass their flags).
  manual_seed(3);
  auto same = std::make_shared<CausalSelfAttention>(AttentionConfig{.d_model = 8, .heads = 4});
  same->to(kFloat64);
  const std::string batch = world().rank() == odd_one ? "32" : "16";
  CHECK_THROWS_WITH(DistributedDataParallel(same, {.settings = {{"optimizer", "adamw"}, {"batch", batch}}}),
                    Contains("rank " + std::to_string(odd_one) + " has batch=32, rank 0 batch=16"));
  CHECK(seconds_since(start) < 10.0);
  // Agreeing ranks construct, and the ranks still communicate in step.
  DistributedDataParallel agreed(same, {.settings = {{"batch", "16"}}});
  CHECK(gather_scalar(1.0).size() == static_cast<size_t>(world().size()));
}

TEST_CASE("DDP without find_unused_parameters names a parameter that got no gradient, on every rank", "[ddp]") {
  auto model = std::make_shared<TwoHeads>();
  DistributedDataParallel ddp(model);
  optim::AdamW optimizer(model->parameters());

  SECTION("unused on every rank") {
    model->use_b = false;
  }
  SECTION("unused on the last rank only") {
    model->use_b = world().rank() != world().size() - 1;
  }
  auto start = std::chrono::steady_clock::now();
  Batch mine = rank_rows(0, world().rank());
  optimizer.zero_grad();
  Tensor loss = cross_entropy(ddp(mine.inputs), mine.targets);
  CHECK_THROWS_WITH(loss.backward(), Contains("'head_b.weight' (rank") && Contains("'head_b.bias'") &&
                                         Contains(std::to_string(world().size() - 1) + ")") &&
                                         Contains("find_unused_parameters = true"));
  CHECK(seconds_since(start) < 10.0);

  // The wrapper is still usable: a step that uses every parameter synchronises as usual.
  model->use_b = true;
  optimizer.zero_grad();
  cross_entropy(ddp(mine.inputs), mine.targets).backward();
  for (const Tensor& parameter : model->parameters()) CHECK(parameter.grad().defined());
}

TEST_CASE("DDP with find_unused_parameters: unused everywhere means no gradient, as on one process", "[ddp]") {
  auto model = std::make_shared<TwoHeads>();
  auto reference = std::make_shared<TwoHeads>();
  model->use_b = reference->use_b = false;
  DistributedDataParallel ddp(model, {.find_unused_parameters = true});
  optim::AdamW optimizer(model->parameters(), {.lr = 1e-2});
  optim::AdamW reference_optimizer(reference->parameters(), {.lr = 1e-2});
  for (int step = 0; step < 5; ++step) {
    Batch whole = mlp_batch(step, 2 * world().size(), kFloat64);
    reference_optimizer.zero_grad();
    cross_entropy((*reference)(whole.inputs), whole.targets).backward();
    reference_optimizer.step();
    Batch mine = rows_of(whole, 2 * world().rank(), 2);
    optimizer.zero_grad();
    cross_entropy(ddp(mine.inputs), mine.targets).backward();
    CHECK_FALSE(model->head_b()->weight().grad().defined());  // so AdamW leaves it alone
    CHECK(model->parameters().front().grad().defined());
    optimizer.step();
  }
  CHECK(max_parameter_difference(*model, *reference) <= 1e-9);
}

TEST_CASE("DDP with find_unused_parameters: a parameter unused on some ranks gets their zeros in the average", "[ddp]") {
  const int ranks = world().size();
  auto model = std::make_shared<TwoHeads>();
  auto probe = std::make_shared<TwoHeads>();
  model->use_b = world().rank() == 0;
  DistributedDataParallel ddp(model, {.bucket_cap_mb = 0.0, .first_bucket_cap_mb = 0.0,
                                      .find_unused_parameters = true});
  // The expected average: the mean over ranks of each rank's loss, on one process.
  for (int rank = 0; rank < ranks; ++rank) {
    probe->use_b = rank == 0;
    Batch theirs = rank_rows(0, rank);
    (cross_entropy((*probe)(theirs.inputs), theirs.targets) / static_cast<double>(ranks)).backward();
  }
  Batch mine = rank_rows(0, world().rank());
  cross_entropy(ddp(mine.inputs), mine.targets).backward();
  std::vector<NamedTensor> actual = model->named_parameters();
  std::vector<NamedTensor> expected = probe->named_parameters();
  for (size_t i = 0; i < actual.size(); ++i) {
    INFO(actual[i].first);
    REQUIRE(actual[i].second.grad().defined());
    CHECK(relative_difference(actual[i].second.grad(), expected[i].second.grad()) <= 1e-12);
  }
}
