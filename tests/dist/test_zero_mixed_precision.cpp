// Mixed precision: bf16 (or fp16) compute copies of the parameters and gradients, fp32 master
// weights and Adam moments in the shard; fp16 scales the loss and every rank skips a step when
// any rank's gradient shard overflowed.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <memory>
#include <string>

#include "tests/dist/zero_test_support.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;

namespace {

// Trains the model at stage `stage` in fp32 and with compute_dtype, the same data and start;
// returns the largest relative parameter difference and both final losses.
struct Tracking {
  double difference = 0;     // relative L2 over all parameters
  double worst_element = 0;  // the largest relative difference of one tensor
  std::string worst;
  double fp32_loss = 0;
  double mixed_loss = 0;
  int skipped = 0;
};

Tracking track(const ModelFactory& make_model, const BatchFactory& make_batch, int stage, DType compute,
               optim::LossScalerOptions scaling = {}, int steps = 20) {
  const int rank = world().rank();
  std::shared_ptr<Module> fp32_model = make_model(kFloat32, 7);
  std::shared_ptr<Module> mixed_model = make_model(kFloat32, 7);
  ZeroOptimizer fp32(fp32_model, zero_optimizer<optim::AdamW>(kAdamW), {.stage = stage});
  ZeroOptimizer mixed(mixed_model, zero_optimizer<optim::AdamW>(kAdamW),
                      {.stage = stage, .compute_dtype = compute, .loss_scaling = scaling});
  Tracking result;
  for (int step = 0; step < steps; ++step) {
    Batch whole = make_batch(step, 4 * world().size(), kFloat32);
    Batch mine = rows_of(whole, 4 * rank, 4);
    fp32.zero_grad();
    Tensor fp32_loss = cross_entropy(fp32(mine.inputs), mine.targets);
    fp32.backward(fp32_loss);
    fp32.step();
    mixed.zero_grad();
    Tensor inputs = is_floating(mine.inputs.dtype()) ? mine.inputs.to(compute) : mine.inputs;
    Tensor mixed_loss = cross_entropy(mixed(inputs), mine.targets);
    mixed.backward(mixed_loss);
    const bool stepped = mixed.step();
    // Every rank took the same decision.
    for (double other : gather_scalar(stepped ? 1.0 : 0.0)) REQUIRE(other == (stepped ? 1.0 : 0.0));
    if (!stepped) ++result.skipped;
    result.fp32_loss = fp32_loss.item();
    result.mixed_loss = mixed_loss.to(kFloat32).item();
  }
  result.difference = relative_l2_difference(entries(mixed.full_parameters()), entries(fp32.full_parameters()));
  result.worst_element = max_difference(entries(mixed.full_parameters()), entries(fp32.full_parameters()), true, &result.worst);
  // The compute copy is the rounded master (stages 0-2 hold it whole on every rank).
  if (stage < 3) {
    StateDict masters = mixed.full_parameters();
    for (const auto& [name, parameter] : mixed_model->named_parameters()) {
      CHECK(parameter.dtype() == compute);
      CHECK(relative_difference(parameter, masters.at(name).to(compute)) == 0.0);
    }
  }
  return result;
}

}  // namespace

TEST_CASE("ZeRO in bf16 with fp32 masters tracks fp32 training", "[zero][mixed]") {
  for (int stage : {0, 1, 2, 3}) {
    Tracking mlp = track(make_mlp, mlp_batch, stage, kBFloat16);
    Tracking gpt = track(make_gpt, gpt_batch, stage, kBFloat16);
    INFO("stage " << stage << ", " << world().size() << " ranks: MLP parameters differ by " << mlp.difference
                  << " (worst tensor " << mlp.worst_element << " in '" << mlp.worst << "'), losses " << mlp.fp32_loss << " vs " << mlp.mixed_loss
                  << "; GPT parameters differ by " << gpt.difference << " (worst tensor " << gpt.worst_element << " in '" << gpt.worst << "'), losses "
                  << gpt.fp32_loss << " vs " << gpt.mixed_loss);
    // bf16 keeps 8 significant bits: activations and gradients are off by up to 2^-8 relative at
    // each op. Adam steps by about lr (1e-2) per step whatever the gradient's scale, so this noise
    // bends each step's direction a little (a lot for elements whose gradient is near zero, where
    // m / sqrt(v) is mostly noise); over 20 steps the masters drift apart by a few percent in the
    // L2 sense (measured at 1-4 ranks: MLP up to 0.042, GPT up to 0.016 — and stage 0, which
    // shards nothing, drifts exactly as much as stages 1-3, so the drift is bf16's, not
    // ZeRO's). The bound 0.1 stays well below a wrong update: a shard left unupdated, a gradient
    // lost or averaged twice changes parameters by up to 20 * lr = 0.2 against values of ~0.3.
    CHECK(mlp.difference <= 0.1);
    CHECK(gpt.difference <= 0.1);
    // The losses of the last step agree to bf16 precision of a loss near 1-2 (2^-8 relative,
    // plus the drift above).
    CHECK(std::abs(mlp.mixed_loss - mlp.fp32_loss) <= 0.05 * mlp.fp32_loss);
    CHECK(std::abs(gpt.mixed_loss - gpt.fp32_loss) <= 0.05 * gpt.fp32_loss);
    CHECK(mlp.skipped == 0);
  }
}

TEST_CASE("ZeRO in fp16: overflowing steps are skipped on every rank and the scale backs off", "[zero][mixed]") {
  // A loss scale of 2^24 overflows fp16 (largest 65504) in every backward: steps are skipped,
  // halving the scale each time, until the scaled gradients fit; then training goes on.
  for (int stage : {1, 2, 3}) {
    Tracking mlp = track(make_mlp, mlp_batch, stage, kFloat16, {.init_scale = 16777216.0, .growth_interval = 1000}, 30);
    INFO("stage " << stage << ": skipped " << mlp.skipped << " steps, parameters differ by " << mlp.difference
                  << ", losses " << mlp.fp32_loss << " vs " << mlp.mixed_loss);
    CHECK(mlp.skipped >= 3);
    CHECK(mlp.skipped < 30);
    CHECK(std::isfinite(mlp.mixed_loss));
  }
}

TEST_CASE("ZeRO fp16: a skipped step leaves parameters and optimizer state untouched", "[zero][mixed]") {
  std::shared_ptr<Module> model = make_mlp(kFloat32, 5);
  ZeroOptimizer zero(model, zero_optimizer<optim::AdamW>(kAdamW),
                     {.stage = 2, .compute_dtype = kFloat16, .loss_scaling = {.init_scale = 1e30}});
  Batch batch = mlp_batch(0, 4, kFloat32);
  StateDict before = zero.full_parameters();
  zero.zero_grad();
  zero.backward(cross_entropy(zero(batch.inputs.to(kFloat16)), batch.targets));
  const double norm = zero.clip_grad_norm(1.0);
  CHECK_FALSE(std::isfinite(norm));
  CHECK_FALSE(zero.step());
  CHECK(zero.loss_scale() == 0.5e30);
  CHECK(max_difference(entries(zero.full_parameters()), entries(before), false, nullptr) == 0.0);
  for (size_t i = 0; i < zero.optimizer().num_parameters(); ++i) CHECK(zero.optimizer().state(i).step == 0);
}
