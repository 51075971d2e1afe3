// ZeRO-3's collectives follow the modules each rank runs; when ranks run different modules (a
// module's forward runs more often on one rank, or one rank skips it) the cross-rank check of the
// debug mode must raise a named dtrain::Error on every rank, promptly — never a hang (CTest's
// timeout would catch one) and never a silent exchange of unrelated buffers.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dist/collective_checker.h"
#include "tests/dist/zero_test_support.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;
using Catch::Matchers::Contains;

namespace {

// first -> middle (repeated `repeats` times, or skipped at 0) -> last; middle and first have the
// same shapes, so only the check (not the collectives' sizes) can tell their gathers apart.
class Repeated : public Module {
 public:
  Repeated() : Module("Repeated") {
    manual_seed(3);
    first_ = register_module("first", std::make_shared<Linear>(kMlpInputs, kMlpInputs));
    middle_ = register_module("middle", std::make_shared<Linear>(kMlpInputs, kMlpInputs));
    last_ = register_module("last", std::make_shared<Linear>(kMlpInputs, kMlpClasses));
    to(kFloat64);
  }
  int repeats = 1;

 protected:
  Tensor forward(const Tensor& x) override {
    Tensor h = (*first_)(x).tanh();
    for (int i = 0; i < repeats; ++i) h = (*middle_)(h).tanh();
    return (*last_)(h);
  }

 private:
  std::shared_ptr<Linear> first_, middle_, last_;
};

// Turns the cross-rank checks on for one test case (every rank at the same point).
class CollectiveChecks {
 public:
  CollectiveChecks() : previous_(collective_checks_enabled()) { set_collective_checks(true); }
  ~CollectiveChecks() { set_collective_checks(previous_); }

 private:
  bool previous_;
};

void train_step(ZeroOptimizer& zero, int64_t step) {
  Batch batch = mlp_batch(step, 4, kFloat64);
  zero.zero_grad();
  zero.backward(cross_entropy(zero(batch.inputs), batch.targets));
  zero.step();
}

// Runs `good_steps` steps with the same modules everywhere, then one in which the last rank runs
// the middle module `odd_repeats` times; every rank must raise.
void expect_error_on_every_rank(int good_steps, int odd_repeats) {
  CollectiveChecks checks;
  auto model = std::make_shared<Repeated>();
  ZeroOptimizer zero(model, zero_optimizer<optim::AdamW>(kAdamW), {.stage = 3});
  for (int step = 0; step < good_steps; ++step) train_step(zero, step);
  if (world().rank() == world().size() - 1) model->repeats = odd_repeats;
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH(train_step(zero, good_steps), Contains("ZeroOptimizer stage 3: the ranks' modules ran differently") &&
                                                      Contains("module 'middle'"));
  CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < 20.0);
}

}  // namespace

TEST_CASE("ZeRO-3: a module whose forward runs more often on one rank raises on every rank", "[zero][errors]") {
  if (world().size() == 1) return;  // one rank cannot disagree with itself
  expect_error_on_every_rank(0, 2);  // in the first iteration, while the order is recorded
  expect_error_on_every_rank(2, 2);  // later, while prefetching along the recorded order
}

TEST_CASE("ZeRO-3: a rank that skips a module raises on every rank", "[zero][errors]") {
  if (world().size() == 1) return;
  expect_error_on_every_rank(0, 0);
  expect_error_on_every_rank(2, 0);
}

TEST_CASE("ZeRO-3 trains on after the ranks agree again (the group stays usable)", "[zero][errors]") {
  // After the errors above, a fresh optimizer on the same group trains normally.
  auto model = std::make_shared<Repeated>();
  ZeroOptimizer zero(model, zero_optimizer<optim::AdamW>(kAdamW), {.stage = 3});
  for (int step = 0; step < 3; ++step) train_step(zero, step);
  StateDict values = zero.full_parameters();
  double checksum = 0;
  for (const auto& [name, tensor] : values) {
    for (double value : tensor.to_vector<double>()) checksum = checksum * 1.0000001 + value;
  }
  for (double other : gather_scalar(checksum)) CHECK(other == checksum);
}

TEST_CASE("ZeroOptimizer raises on every rank when the ranks run different stages", "[zero][errors]") {
  if (world().size() == 1) return;
  const int odd_one = world().size() - 1;
  auto factory = zero_optimizer<optim::AdamW>(kAdamW);
  CHECK_THROWS_WITH(ZeroOptimizer(make_mlp(kFloat32, 1), factory, {.stage = world().rank() == odd_one ? 2 : 1}),
                    Contains("rank " + std::to_string(odd_one) + " has zero stage=2, rank 0 zero stage=1"));
  CHECK_THROWS_WITH(
      ZeroOptimizer(make_mlp(kFloat32, 1), factory,
                    {.stage = 1, .settings = {{"lr", world().rank() == odd_one ? "0.002" : "0.001"}}}),
      Contains("rank " + std::to_string(odd_one) + " has lr=0.002, rank 0 lr=0.001"));
}

TEST_CASE("ZeroOptimizer refuses bad options with a named error", "[zero][errors]") {
  auto factory = zero_optimizer<optim::AdamW>(kAdamW);
  CHECK_THROWS_WITH(ZeroOptimizer(make_mlp(kFloat32, 1), factory, {.stage = 4}), Contains("expected stage 0, 1, 2 or 3"));
  CHECK_THROWS_WITH(ZeroOptimizer(make_mlp(kFloat32, 1), factory, {.stage = 1, .compute_dtype = kFloat64}),
                    Contains("narrower dtype"));
  CHECK_THROWS_WITH(ZeroOptimizer(make_mlp(kFloat32, 1), factory, {.stage = 1, .bucket_cap_mb = -1}),
                    Contains("bucket_cap_mb >= 0"));
  auto wrong_factory = [](std::vector<std::vector<Tensor>>) -> std::unique_ptr<optim::Optimizer> {
    return std::make_unique<optim::AdamW>(std::vector<Tensor>{zeros({3})}, kAdamW);
  };
  CHECK_THROWS_WITH(ZeroOptimizer(make_mlp(kFloat32, 1), wrong_factory, {.stage = 1}),
                    Contains("exactly the tensors it is given"));
}
