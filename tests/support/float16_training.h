#pragma once
// float16 training with dynamic loss scaling (optim/loss_scaler.h) and float32 masters
// (optim::MasterWeightAdamW), step by step, on any device: the CPU test (tests/optim) and the GPU
// test (tests/cuda) run the same procedure and check the same hand-computed skip pattern.
//
// The scale starts at 2^30 and the growth interval is longer than the run. Backward starts from
// the scale itself (the gradient of loss * scale with respect to loss), and every scale from 2^30
// down to 2^16 = 65536 is above float16's largest value, 65504: those 15 steps see inf gradients,
// skip, leave the parameters untouched and halve the scale. At 2^15 the gradients are finite: the
// model is still the initial one (skips change nothing), its softmax near uniform (p about 1/16),
// so each logit's gradient is at most 2^15 / 32 rows = 1024 in size and a column of them sums to
// about 1024 * (2 * 15/16 + 30/16) = 3840 in size, which times the hidden values (a few units at
// most) stays far below 65504. So: exactly 15 skipped steps, then clean steps at 2^15. These
// counts are reasoned out here, not taken from a run.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/core.h"
#include "layers/layers.h"
#include "optim/optim.h"

namespace dtrain::test {

inline constexpr int kExpectedSkips = 15;            // scales 2^30 .. 2^16
inline constexpr double kScaleAfterSkips = 32768.0;  // 2^15
inline constexpr int kSteps = kExpectedSkips + 30;

// Targets 0..15 spread over the 32 rows: (7 i) mod 16.
inline Tensor float16_test_targets() {
  std::vector<int64_t> values;
  for (int64_t i = 0; i < 32; ++i) values.push_back((7 * i) % 16);
  return from_vector(values, {32}, {.dtype = kInt64});
}

struct StepRecord {
  bool skipped = false;
  double scale_before = 0.0;
  double loss = 0.0;
};

struct Fp16Run {
  std::vector<StepRecord> steps;
  bool unchanged_on_every_skip = true;
  bool changed_on_every_clean_step = true;
};

inline std::shared_ptr<Sequential> make_float16_test_model() {
  manual_seed(2468);  // the same float32 initial weights on every call
  auto model = std::make_shared<Sequential>();
  model->push_back(std::make_shared<Linear>(24, 48));
  model->push_back(std::make_shared<GELU>(GeluApproximation::Tanh));
  model->push_back(std::make_shared<Linear>(48, 16));
  return model;
}

inline std::vector<Tensor> snapshot(const std::vector<Tensor>& parameters) {
  std::vector<Tensor> copies;
  for (const Tensor& parameter : parameters) copies.push_back(parameter.detach().to(Device::cpu()).clone());
  return copies;
}

inline bool all_equal(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  for (size_t i = 0; i < a.size(); ++i) {
    if (!equal(a[i], b[i])) return false;
  }
  return true;
}

inline Fp16Run train_float16(Device device) {
  auto model = make_float16_test_model();
  model->to(device);
  model->to(kFloat16);
  const Tensor input_values = mul(sin(mul(arange(32 * 24, {.dtype = kFloat64}), 0.731)), 1.5).reshape({32, 24});
  const Tensor input = input_values.to(kFloat16).to(device);
  const Tensor target = float16_test_targets().to(device);
  const std::vector<Tensor> parameters = model->parameters();
  optim::MasterWeightAdamW optimizer(parameters, {.lr = 1e-2, .weight_decay = 0.0});
  optim::DynamicLossScaler scaler({.init_scale = std::pow(2.0, 30), .growth_interval = 1000});
  Fp16Run run;
  for (int step = 0; step < kSteps; ++step) {
    optimizer.zero_grad();
    const Tensor loss = cross_entropy((*model)(input), target);
    StepRecord record{.scale_before = scaler.scale(), .loss = loss.to(kFloat64).item()};
    scaler.scale_loss(loss).backward();
    const std::vector<Tensor> before = snapshot(parameters);
    scaler.unscale(parameters);
    record.skipped = scaler.found_inf();
    if (!record.skipped) optimizer.step();
    scaler.update();
    const bool unchanged = all_equal(before, snapshot(parameters));
    if (record.skipped && !unchanged) run.unchanged_on_every_skip = false;
    if (!record.skipped && unchanged) run.changed_on_every_clean_step = false;
    run.steps.push_back(record);
  }
  return run;
}


// Checks one run against the hand-computed pattern above.
inline void require_float16_pattern(const Fp16Run& run) {
  for (int step = 0; step < kSteps; ++step) {
    INFO("step " << step << ": scale " << run.steps[step].scale_before << ", loss " << run.steps[step].loss);
    const bool expected_skip = step < kExpectedSkips;
    REQUIRE(run.steps[step].skipped == expected_skip);
    const double expected_scale = expected_skip ? std::pow(2.0, 30 - step) : kScaleAfterSkips;
    REQUIRE(run.steps[step].scale_before == expected_scale);
  }
  REQUIRE(run.unchanged_on_every_skip);
  REQUIRE(run.changed_on_every_clean_step);
  // It learned: 30 AdamW steps at lr 1e-2 on one fixed batch.
  REQUIRE(run.steps.back().loss < 0.6 * run.steps.front().loss);
}

}  // namespace dtrain::test
