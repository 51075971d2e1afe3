// ZeroOptions::reduce_in_flight_cap_mb (as DeepSpeed's reduce_bucket_size): at stages 2-3 a
// gradient bucket's buffer exists only while it fills and is reduced, and a new one is allocated
// only once the buckets in flight leave room under the cap. So the communication peak of a
// backward is the cap (or the largest bucket, when larger), counted by the allocator, not the
// whole gradient; and the cap changes when buckets are waited for, never the gradients.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "optim/adam.h"
#include "tests/dist/zero_test_support.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;

namespace {

std::shared_ptr<Module> cap_test_mlp() {
  manual_seed(11);
  return std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
      std::make_shared<Linear>(kMlpInputs, 37), std::make_shared<ReLU>(), std::make_shared<Linear>(37, 23),
      std::make_shared<ReLU>(), std::make_shared<Linear>(23, kMlpClasses)});
}

struct CappedBackward {
  int64_t communication_peak = 0;  // allocator: Communication bytes above the level before backward
  size_t engine_peak = 0;          // the engine's own count of bucket bytes in flight
  int64_t largest_bucket_bytes = 0;
  int64_t all_buckets_bytes = 0;
  std::vector<std::vector<double>> gradient_shards;
};

CappedBackward capped_backward(int stage, double cap_mb) {
  std::shared_ptr<Module> model = cap_test_mlp();
  ZeroOptimizer zero(model, zero_optimizer<optim::Adam>(optim::AdamOptions{}),
                     {.stage = stage, .bucket_cap_mb = 0, .reduce_in_flight_cap_mb = cap_mb});
  CappedBackward result;
  for (const ShardedUnit& unit : zero.units()) {
    const int64_t bytes = unit.padded_total() * 4;
    result.largest_bucket_bytes = std::max(result.largest_bucket_bytes, bytes);
    result.all_buckets_bytes += bytes;
  }
  Batch batch = mlp_batch(0, 8, kFloat32);
  zero.zero_grad();
  Tensor loss = cross_entropy(zero(batch.inputs), batch.targets);
  const MemoryStats before = memory_stats();
  reset_peak_memory_stats();
  zero.backward(loss);
  result.communication_peak = memory_stats()[MemoryTag::Communication].peak - before[MemoryTag::Communication].current;
  result.engine_peak = zero.gradient_sharder().synchronizer().peak_bytes_in_flight();
  CHECK(memory_stats()[MemoryTag::Communication].current == before[MemoryTag::Communication].current);
  for (const ShardedUnit& unit : zero.units()) result.gradient_shards.push_back(unit.gradient_shard.to_vector<double>());
  return result;
}

}  // namespace

TEST_CASE("ZeRO's cap on gradient bytes in flight bounds the communication peak and leaves the gradients alone",
          "[zero][memory]") {
  for (int stage : {2, 3}) {
    const CappedBackward uncapped = capped_backward(stage, 0.0);
    // The cap: the largest bucket, so at most one bucket is in flight at a time.
    const double cap_mb = static_cast<double>(uncapped.largest_bucket_bytes) / (1024.0 * 1024.0);
    const CappedBackward capped = capped_backward(stage, cap_mb);
    INFO("stage " << stage << ", " << world().size() << " ranks: largest bucket " << capped.largest_bucket_bytes
                  << " B, all " << capped.all_buckets_bytes << " B; communication peak " << capped.communication_peak
                  << " B capped (engine " << capped.engine_peak << " B), " << uncapped.communication_peak
                  << " B uncapped");
    REQUIRE(capped.all_buckets_bytes > capped.largest_bucket_bytes);  // the cap is below the whole gradient
    CHECK(capped.engine_peak <= static_cast<size_t>(capped.largest_bucket_bytes));
    CHECK(uncapped.engine_peak <= static_cast<size_t>(uncapped.all_buckets_bytes));
    // The allocator's count (the debug mode's cross-rank checks allocate small tensors of their
    // own under the same tag, so it is compared without them).
    if (std::getenv("DTRAIN_DEBUG_COLLECTIVES") == nullptr) {
      CHECK(capped.communication_peak <= capped.largest_bucket_bytes);
      CHECK(capped.communication_peak > 0);
    }
    // Waiting earlier changes nothing in the sums: the same shards, bit for bit.
    CHECK(capped.gradient_shards == uncapped.gradient_shards);
  }
}

TEST_CASE("ZeRO rejects a negative cap on gradient bytes in flight", "[zero][memory]") {
  CHECK_THROWS_WITH(ZeroOptimizer(cap_test_mlp(), zero_optimizer<optim::Adam>(optim::AdamOptions{}),
                                  {.stage = 2, .reduce_in_flight_cap_mb = -1}),
                    Catch::Contains("reduce_in_flight_cap_mb >= 0 MB, got -1"));
}
