// Sharded construction (dist/zero/sharded_construction.h): ZeroOptimizer over a model built under
// a DeferredInit. Checked against the whole build from the same seed sharded by the ordinary
// ZeroOptimizer (the reference draws its values with the ordinary random ops and receives rank
// 0's by broadcast): the same shards bit for bit at every stage, the same training, and a setup
// peak within the formula, which the whole build exceeds by about the whole model.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "optim/adamw.h"
#include "tests/dist/zero_test_support.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;
using Catch::Contains;

namespace {

constexpr uint64_t kSeed = 9;

// Whether a and b hold the same values bit for bit (16-bit floats widen to float32 exactly).
bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.numel() != b.numel()) return false;
  if (a.dtype() == kFloat64) {
    const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
    return std::memcmp(x.data(), y.data(), x.size() * sizeof(double)) == 0;
  }
  const std::vector<float> x = a.to(kFloat32).to_vector<float>(), y = b.to(kFloat32).to_vector<float>();
  return std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
}

struct Precision {
  const char* name;
  DType dtype;                        // the model's
  std::optional<DType> compute_dtype; // ZeRO's, when mixed
};
const Precision kPrecisions[] = {{"fp32", kFloat32, std::nullopt},
                                 {"fp64", kFloat64, std::nullopt},
                                 {"bf16 compute, fp32 masters", kFloat32, kBFloat16}};

std::shared_ptr<Module> whole_gpt(DType dtype) {
  manual_seed(kSeed);
  auto model = std::make_shared<TinyGPT>(3, 8, 2);
  model->to(dtype);
  return model;
}

DeferredModel<TinyGPT> deferred_gpt(DType dtype, uint64_t seed = kSeed) {
  manual_seed(seed);
  return build_deferred_as<TinyGPT>(dtype, 3, 8, 2);
}

ZeroOptions options_for(int stage, const Precision& precision) {
  // A persistence threshold at stage 3 puts the biases and norms in the persistent unit (kept whole).
  ZeroOptions options{.stage = stage, .bucket_cap_mb = 0.0005, .param_persistence_threshold = stage == 3 ? 10 : 0};
  options.compute_dtype = precision.compute_dtype;
  return options;
}

void train(ZeroOptimizer& zero, DType dtype, int steps) {
  const int rank = world().rank();
  const int64_t rows = 2;
  for (int step = 0; step < steps; ++step) {
    Batch whole = gpt_batch(step, rows * world().size(), dtype);
    Batch mine = rows_of(whole, rows * rank, rows);
    zero.zero_grad();
    zero.backward(cross_entropy(zero(mine.inputs), mine.targets));
    REQUIRE(zero.step());
  }
  zero.wait_for_parameters();
}

int64_t buffer_bytes(const Module& model) {
  int64_t bytes = 0;
  for (const auto& [name, buffer] : model.named_buffers()) bytes += static_cast<int64_t>(buffer.nbytes());
  return bytes;
}

}  // namespace

TEST_CASE("Sharded construction gives every rank the whole build's shards, bit for bit, at stages 0-3",
          "[zero][sharded_construction]") {
  for (const Precision& precision : kPrecisions) {
    for (int stage : {0, 1, 2, 3}) {
      INFO("stage " << stage << ", " << precision.name << ", " << world().size() << " ranks");
      const ZeroOptions options = options_for(stage, precision);
      auto factory = zero_optimizer<optim::AdamW>(kAdamW);
      ZeroOptimizer whole(whole_gpt(precision.dtype), factory, options);
      DeferredModel<TinyGPT> built = deferred_gpt(precision.dtype);
      ZeroOptimizer sharded(built.model, built.parameters, factory, options);

      REQUIRE(sharded.units().size() == whole.units().size());
      for (size_t u = 0; u < whole.units().size(); ++u) {
        const ShardedUnit& expected = whole.units()[u];
        const ShardedUnit& actual = sharded.units()[u];
        INFO("unit " << expected.name);
        REQUIRE(actual.name == expected.name);
        CHECK(same_bits(actual.compute_shard, expected.compute_shard));
        CHECK(same_bits(actual.master_shard, expected.master_shard));
        // Below stage 3 and in stage 3's persistent unit the flat buffer stays whole: all of it.
        if (expected.full.storage()->is_resident()) CHECK(same_bits(actual.full, expected.full));
        CHECK(actual.full.storage()->is_resident() == expected.full.storage()->is_resident());
      }
      const StateDict expected_values = whole.full_parameters();
      const StateDict actual_values = sharded.full_parameters();
      REQUIRE(actual_values.size() == expected_values.size());
      for (const auto& [name, value] : expected_values) {
        INFO(name);
        REQUIRE(actual_values.find(name) != nullptr);
        CHECK(same_bits(*actual_values.find(name), value));
      }
    }
  }
}

TEST_CASE("Training after sharded construction equals training the whole build, bit for bit",
          "[zero][sharded_construction]") {
  for (const Precision& precision : kPrecisions) {
    for (int stage : {1, 2, 3}) {
      INFO("stage " << stage << ", " << precision.name << ", " << world().size() << " ranks");
      const ZeroOptions options = options_for(stage, precision);
      auto factory = zero_optimizer<optim::AdamW>(kAdamW);
      ZeroOptimizer whole(whole_gpt(precision.dtype), factory, options);
      DeferredModel<TinyGPT> built = deferred_gpt(precision.dtype);
      ZeroOptimizer sharded(built.model, built.parameters, factory, options);
      const StateDict initial = whole.full_parameters();
      train(whole, precision.dtype, 3);
      train(sharded, precision.dtype, 3);
      const StateDict expected = whole.full_parameters();
      const StateDict actual = sharded.full_parameters();
      for (const auto& [name, value] : expected) {
        INFO(name);
        CHECK(same_bits(*actual.find(name), value));
        CHECK_FALSE(same_bits(value, *initial.find(name)));  // it did train
      }
    }
  }
}

TEST_CASE("Sharded construction's setup peak is at most shards + one module's parameters, the whole build's is not",
          "[zero][sharded_construction][memory]") {
  for (const Precision& precision : {kPrecisions[0], kPrecisions[2]}) {
    INFO(precision.name << ", " << world().size() << " ranks");
    const ZeroOptions options{.stage = 3, .compute_dtype = precision.compute_dtype};
    auto factory = zero_optimizer<optim::AdamW>(kAdamW);
    const int64_t c = precision.compute_dtype ? 2 : 4;  // compute bytes per element
    const bool mixed = precision.compute_dtype.has_value();

    const MemoryStats before = memory_stats();
    reset_peak_memory_stats();
    int64_t sharded_peak = 0;
    int64_t formula = 0;
    int64_t psi = 0;
    int64_t largest_parameter = 0;
    {
      DeferredModel<TinyGPT> built = deferred_gpt(precision.dtype);
      ZeroOptimizer sharded(built.model, built.parameters, factory, options);
      sharded_peak = memory_stats().total.peak - before.total.current;
      // The formula, from the units' sizes: each unit keeps its compute shard and gradient shard
      // (c bytes each per element) and in mixed precision an fp32 master shard; the one being
      // written holds its whole flat buffer besides; the model's buffers; and in mixed precision
      // one float32 chunk of the deferred writes (at most the largest parameter plus one).
      int64_t largest_unit = 0;
      for (const ShardedUnit& unit : sharded.units()) {
        formula += unit.shard_size() * (c + c + (mixed ? 4 : 0));
        if (unit.persistent) formula += unit.padded_total() * c;  // kept whole
        else largest_unit = std::max(largest_unit, unit.padded_total() * c);
      }
      for (const auto& [name, parameter] : built.model->named_parameters()) {
        psi += parameter.numel();
        largest_parameter = std::max(largest_parameter, parameter.numel());
      }
      formula += largest_unit + buffer_bytes(*built.model) + (mixed ? (largest_parameter + 1) * 4 : 0);
      const ShardedSetupBound bound = sharded_setup_bound(sharded);
      INFO(bound.str() << "; measured " << sharded_peak << " B, formula " << formula << " B");
      CHECK(sharded_peak <= formula);
      CHECK(sharded_peak <= bound.total());
      CHECK(bound.total() <= formula);
    }
    const MemoryStats between = memory_stats();
    CHECK(between.total.current == before.total.current);  // all given back

    reset_peak_memory_stats();
    int64_t whole_peak = 0;
    {
      ZeroOptimizer whole(whole_gpt(precision.dtype), factory, options);
      whole_peak = memory_stats().total.peak - between.total.current;
    }
    INFO("setup peak: sharded construction " << sharded_peak << " B, whole build " << whole_peak << " B, Ψ = " << psi);
    // The whole build holds the whole model (4 bytes per element) while it shards it; sharded
    // construction never does, and at most one parameter while building.
    CHECK(whole_peak >= sharded_peak + 4 * psi - 4 * largest_parameter);
  }
}

TEST_CASE("Sharded construction keeps frozen parameters whole and equal to the whole build's",
          "[zero][sharded_construction]") {
  auto factory = zero_optimizer<optim::AdamW>(kAdamW);
  std::shared_ptr<Module> whole_model = whole_gpt(kFloat32);
  DeferredModel<TinyGPT> built = deferred_gpt(kFloat32);
  for (Module* model : {whole_model.get(), static_cast<Module*>(built.model.get())}) {
    for (const auto& [name, parameter] : model->named_parameters()) {
      if (name.rfind("norm.", 0) == 0) Tensor(parameter).set_requires_grad(false);
    }
  }
  ZeroOptimizer whole(whole_model, factory, {.stage = 3});
  ZeroOptimizer sharded(built.model, built.parameters, factory, {.stage = 3});
  const StateDict expected = whole_model->state_dict();
  for (const char* name : {"norm.weight", "norm.bias"}) {
    INFO(name);
    const Tensor frozen = *built.model->state_dict().find(name);
    CHECK(frozen.storage()->is_resident());
    CHECK(same_bits(frozen, *expected.find(name)));
  }
}

TEST_CASE("Sharded construction raises on every rank when the ranks recorded different draws",
          "[zero][sharded_construction][errors]") {
  auto factory = zero_optimizer<optim::AdamW>(kAdamW);
  const int odd_one = world().size() - 1;
  if (world().size() > 1) {
    DeferredModel<TinyGPT> built = deferred_gpt(kFloat32, world().rank() == odd_one ? kSeed + 1 : kSeed);
    CHECK_THROWS_WITH(ZeroOptimizer(built.model, built.parameters, factory, {.stage = 3}),
                      Contains("rank " + std::to_string(odd_one) + " has deferred initialisation=tokens.weight: normal"));
  }
  // Without its DeferredParameters the model has no values to shard: a named error, on every rank.
  DeferredModel<TinyGPT> built = deferred_gpt(kFloat32);
  CHECK_THROWS_WITH(ZeroOptimizer(built.model, factory, {.stage = 2}),
                    Contains("parameter 'tokens.weight' holds no bytes") && Contains("DeferredParameters"));
}
