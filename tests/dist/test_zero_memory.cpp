// ZeRO's memory claims, checked against the allocator's tagged counters (core/allocator.h): with
// Ψ parameters, N ranks and Adam, after a step each rank holds, in bytes,
//                 fp32              bf16 compute, fp32 masters
//   stage 0 (DP)  16Ψ               16Ψ  (2 + 2 + 12)
//   stage 1       8Ψ + 8Ψ/N         4Ψ + 12Ψ/N
//   stage 2       4Ψ + 12Ψ/N        2Ψ + 14Ψ/N
//   stage 3       16Ψ/N             16Ψ/N
// plus the padding of the flat buffers, which the report states. "Ψ/N" is exactly the number
// of parameter elements in this rank's shards; they add up to Ψ over the ranks.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "optim/adam.h"
#include "tests/dist/zero_test_support.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;

namespace {

struct Coefficients {
  int64_t whole;  // bytes per parameter held by every rank
  int64_t shard;  // bytes per parameter of this rank's shard
};

// The table above, written out rather than computed by the code under test.
Coefficients paper_formula(int stage, bool mixed) {
  static const Coefficients fp32[] = {{16, 0}, {8, 8}, {4, 12}, {0, 16}};
  static const Coefficients half[] = {{16, 0}, {4, 12}, {2, 14}, {0, 16}};
  return mixed ? half[stage] : fp32[stage];
}

int64_t sum_over_ranks(int64_t value) {
  Tensor total = from_vector(std::vector<int64_t>{value});
  world().all_reduce(total, ReduceOp::Sum)->wait();
  return static_cast<int64_t>(total.item());
}

std::shared_ptr<Module> memory_test_mlp() {
  manual_seed(11);
  return std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
      std::make_shared<Linear>(kMlpInputs, 37), std::make_shared<ReLU>(), std::make_shared<Linear>(37, 23),
      std::make_shared<ReLU>(), std::make_shared<Linear>(23, kMlpClasses)});
}

}  // namespace

TEST_CASE("ZeRO model-state bytes equal the paper's formulas plus the reported padding", "[zero][memory]") {
  for (bool mixed : {false, true}) {
    for (int stage : {0, 1, 2, 3}) {
      for (double bucket_cap_mb : {25.0, 0.0}) {
        INFO("stage " << stage << (mixed ? ", bf16 compute" : ", fp32") << ", bucket cap " << bucket_cap_mb << " MB, "
                      << world().size() << " ranks");
        const MemoryStats before = memory_stats();
        {
          std::shared_ptr<Module> model = memory_test_mlp();
          const int64_t psi = model->parameter_count();  // 6*37+37 + 37*23+23 + 23*4+4 = 1229
          ZeroOptions options{.stage = stage, .bucket_cap_mb = bucket_cap_mb};
          if (mixed) options.compute_dtype = kBFloat16;
          ZeroOptimizer zero(model, zero_optimizer<optim::Adam>(optim::AdamOptions{.lr = 1e-3}), options);
          Batch batch = mlp_batch(0, 4, kFloat32);
          if (mixed) batch.inputs = batch.inputs.to(kBFloat16);
          zero.zero_grad();
          zero.backward(cross_entropy(zero(batch.inputs), batch.targets));
          REQUIRE(zero.step());

          const MemoryStats after = memory_stats();
          auto delta = [&](MemoryTag tag) { return after[tag].current - before[tag].current; };
          const ZeroMemoryReport report = zero.memory_report();
          INFO(report.str());
          // What the optimizer says it holds is what the allocator counted (nothing else of this
          // test holds parameters, gradients or optimizer state).
          CHECK(report.held.parameters == delta(MemoryTag::Parameters));
          CHECK(report.held.gradients == delta(MemoryTag::Gradients));
          CHECK(report.held.optimizer_state == delta(MemoryTag::OptimizerState));
          CHECK(delta(MemoryTag::Communication) == 0);  // nothing in flight at rest
          CHECK(report.parameter_count == psi);
          CHECK(report.states_per_element == 2);

          // This rank's share of Ψ: all of it at stage 0, and over the ranks exactly Ψ otherwise,
          // in near-equal parts: less than N elements per flat buffer away from Ψ/N (a shard holds
          // at most N - 1 elements of padding).
          const int64_t share = report.shard_parameter_count;
          if (stage == 0) {
            CHECK(share == psi);
          } else {
            CHECK(sum_over_ranks(share) == psi);
            const int64_t n = world().size();
            CHECK(std::abs(share * n - psi) < n * n * static_cast<int64_t>(zero.units().size()));
          }
          const Coefficients formula = paper_formula(stage, mixed);
          const int64_t model_state = delta(MemoryTag::Parameters) + delta(MemoryTag::Gradients) +
                                      delta(MemoryTag::OptimizerState);
          CHECK(model_state == formula.whole * psi + formula.shard * share + report.padding.total());
          // Per tag too (the report's own formula).
          const ZeroModelStateBytes expected = report.expected();
          CHECK(delta(MemoryTag::Parameters) == expected.parameters + report.padding.parameters);
          CHECK(delta(MemoryTag::Gradients) == expected.gradients + report.padding.gradients);
          CHECK(delta(MemoryTag::OptimizerState) == expected.optimizer_state + report.padding.optimizer_state);
          // Padding: none with one shard; otherwise less than N elements per flat buffer.
          if (stage == 0 || world().size() == 1) CHECK(report.padding.total() == 0);
          CHECK(report.str().find("zero-" + std::to_string(stage)) != std::string::npos);
        }
        // Everything is given back with the optimizer and the model.
        const MemoryStats end = memory_stats();
        for (MemoryTag tag : {MemoryTag::Parameters, MemoryTag::Gradients, MemoryTag::OptimizerState}) {
          CHECK(end[tag].current == before[tag].current);
        }
      }
    }
  }
}

TEST_CASE("ZeRO stage 2 never holds the whole gradient, only its shard and one parameter's gradient in flight",
          "[zero][memory]") {
  std::shared_ptr<Module> model = memory_test_mlp();
  int64_t largest_parameter_bytes = 0;
  int64_t whole_gradient_bytes = 0;
  for (const Tensor& parameter : model->parameters()) {
    largest_parameter_bytes = std::max<int64_t>(largest_parameter_bytes, static_cast<int64_t>(parameter.nbytes()));
    whole_gradient_bytes += static_cast<int64_t>(parameter.nbytes());
  }
  ZeroOptimizer zero(model, zero_optimizer<optim::Adam>(optim::AdamOptions{}), {.stage = 2, .bucket_cap_mb = 0});
  Batch batch = mlp_batch(0, 4, kFloat32);
  zero.zero_grad();
  Tensor loss = cross_entropy(zero(batch.inputs), batch.targets);
  const MemoryStats before = memory_stats();
  reset_peak_memory_stats();
  zero.backward(loss);
  const MemoryStats after = memory_stats();
  const ZeroMemoryReport report = zero.memory_report();
  INFO(report.str());
  const int64_t shard_bytes = report.held.gradients;
  // Peak of gradients: the shards plus the one gradient autograd just produced (copied into its
  // bucket and freed at once).
  CHECK(after[MemoryTag::Gradients].peak - before[MemoryTag::Gradients].current <= largest_parameter_bytes);
  CHECK(before[MemoryTag::Gradients].current == shard_bytes);
  if (world().size() > 1) CHECK(shard_bytes < whole_gradient_bytes);
  CHECK(after[MemoryTag::Communication].current == before[MemoryTag::Communication].current);
}

TEST_CASE("ZeRO stage 3 holds one module's gathered parameters at a time without prefetch, more with it",
          "[zero][memory]") {
  int64_t peak_without = 0;
  int64_t peak_with = 0;
  int64_t largest_unit_bytes = 0;
  int64_t all_units_bytes = 0;
  for (double prefetch_mb : {0.0, 50.0}) {
    std::shared_ptr<Module> model = memory_test_mlp();
    ZeroOptimizer zero(model, zero_optimizer<optim::Adam>(optim::AdamOptions{}), {.stage = 3, .prefetch_mb = prefetch_mb});
    largest_unit_bytes = 0;
    all_units_bytes = 0;
    for (const ShardedUnit& unit : zero.units()) {
      const int64_t bytes = unit.padded_total() * 4;
      largest_unit_bytes = std::max(largest_unit_bytes, bytes);
      all_units_bytes += bytes;
    }
    for (int step = 0; step < 3; ++step) {  // the first records the order; prefetch follows it after
      Batch batch = mlp_batch(step, 4, kFloat32);
      zero.zero_grad();
      const MemoryStats before = memory_stats();
      reset_peak_memory_stats();
      zero.backward(cross_entropy(zero(batch.inputs), batch.targets));
      zero.step();
      const int64_t peak = memory_stats()[MemoryTag::Parameters].peak - before[MemoryTag::Parameters].current;
      if (step == 2) (prefetch_mb == 0.0 ? peak_without : peak_with) = peak;
      CHECK(memory_stats()[MemoryTag::Parameters].current == before[MemoryTag::Parameters].current);
    }
  }
  INFO("peak gathered parameters: " << peak_without << " B without prefetch, " << peak_with << " B with; largest module "
                                    << largest_unit_bytes << " B, all " << all_units_bytes << " B");
  CHECK(peak_without == largest_unit_bytes);
  CHECK(peak_with > largest_unit_bytes);
  CHECK(peak_with <= all_units_bytes);
}
