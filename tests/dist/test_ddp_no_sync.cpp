// Gradient accumulation: backwards under no_sync() stay on their rank; the next synchronised
// backward averages the accumulated sum, which must equal one process's gradient of the bigger
// batch that all micro-batches of all ranks make together.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/dist/ddp_test_support.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;

TEST_CASE("DDP no_sync accumulation equals one process with the bigger batch", "[ddp]") {
  const int ranks = world().size();
  const int rank = world().rank();
  constexpr int64_t kRowsPerRank = 2;
  constexpr int kMicroBatches = 3;
  const int64_t micro_rows = kRowsPerRank * ranks;  // one micro-batch of every rank together

  std::shared_ptr<Module> reference = make_gpt(kFloat64, 11);
  std::shared_ptr<Module> replica = make_gpt(kFloat64, 11);
  std::shared_ptr<Module> local_only = make_gpt(kFloat64, 11);  // what no_sync must leave alone
  DistributedDataParallel ddp(replica, {.first_bucket_cap_mb = 0.0});  // several buckets
  optim::AdamWOptions adamw{.lr = 1e-2};
  optim::AdamW reference_optimizer(reference->parameters(), adamw);
  optim::AdamW optimizer(replica->parameters(), adamw);

  for (int step = 0; step < 4; ++step) {
    // The big batch: the micro-batches one after another.
    Batch big = gpt_batch(step, micro_rows * kMicroBatches, kFloat64);
    reference_optimizer.zero_grad();
    cross_entropy((*reference)(big.inputs), big.targets).backward();

    optimizer.zero_grad();
    for (int micro = 0; micro < kMicroBatches; ++micro) {
      Batch mine = rows_of(big, micro * micro_rows + rank * kRowsPerRank, kRowsPerRank);
      if (micro + 1 < kMicroBatches) {
        auto no_sync = ddp.no_sync();
        CHECK_FALSE(ddp.synchronizes_gradients());
        (cross_entropy(ddp(mine.inputs), mine.targets) / static_cast<double>(kMicroBatches)).backward();
      } else {
        CHECK(ddp.synchronizes_gradients());
        (cross_entropy(ddp(mine.inputs), mine.targets) / static_cast<double>(kMicroBatches)).backward();
      }
      if (step == 0 && micro == 0) {
        // Nothing was communicated: the gradient is this rank's own.
        local_only->zero_grad();
        (cross_entropy((*local_only)(mine.inputs), mine.targets) / static_cast<double>(kMicroBatches)).backward();
        std::vector<NamedTensor> expected = local_only->named_parameters();
        std::vector<NamedTensor> actual = replica->named_parameters();
        for (size_t i = 0; i < actual.size(); ++i) {
          INFO(actual[i].first);
          CHECK(relative_difference(actual[i].second.grad(), expected[i].second.grad()) == 0.0);
        }
      }
    }
    std::vector<NamedTensor> expected = reference->named_parameters();
    std::vector<NamedTensor> actual = replica->named_parameters();
    for (size_t i = 0; i < actual.size(); ++i) {
      INFO("step " << step << ", gradient of " << actual[i].first);
      CHECK(relative_difference(actual[i].second.grad(), expected[i].second.grad()) <= 1e-12);
    }
    reference_optimizer.step();
    optimizer.step();
  }
  std::string worst;
  double difference = max_parameter_difference(*replica, *reference, &worst);
  INFO("largest relative parameter difference " << difference << " in '" << worst << "'");
  CHECK(difference <= 1e-9);
}

TEST_CASE("DDP no_sync nests and restores synchronisation", "[ddp]") {
  DistributedDataParallel ddp(make_mlp(kFloat64, 3));
  CHECK(ddp.synchronizes_gradients());
  {
    auto outer = ddp.no_sync();
    {
      auto inner = ddp.no_sync();
      CHECK_FALSE(ddp.synchronizes_gradients());
    }
    CHECK_FALSE(ddp.synchronizes_gradients());
  }
  CHECK(ddp.synchronizes_gradients());
}
