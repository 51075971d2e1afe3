// DistributedSampler across real ranks: every rank's share of an epoch, gathered, must be the
// epoch's one shuffled order — disjoint, equal-size slices, padded as PyTorch pads — and a new
// epoch (DataLoader::set_epoch) must shuffle anew, the same way on every rank.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <numeric>
#include <vector>

#include "data/dataloader.h"
#include "dist/distributed_sampler.h"
#include "tests/dist/ddp_test_support.h"

using namespace dtrain;
using namespace dtrain::dist;

namespace {

// Every rank's indices, rank after rank (all shares have one size).
std::vector<int64_t> gather_shares(const std::vector<int64_t>& mine) {
  Tensor input = from_vector(mine);
  Tensor output = empty({static_cast<int64_t>(mine.size()) * world().size()}, {.dtype = kInt64});
  world().all_gather(input, output)->wait();
  return output.to_vector<int64_t>();
}

// What PyTorch's DistributedSampler yields for rank in world_size ranks without shuffling.
std::vector<int64_t> pytorch_unshuffled(int64_t dataset_size, int rank, int world_size) {
  int64_t per_rank = (dataset_size + world_size - 1) / world_size;
  std::vector<int64_t> order(static_cast<size_t>(dataset_size));
  std::iota(order.begin(), order.end(), 0);
  size_t original = order.size();
  for (size_t i = 0; order.size() < static_cast<size_t>(per_rank * world_size); ++i) order.push_back(order[i % original]);
  std::vector<int64_t> share;
  for (size_t i = static_cast<size_t>(rank); i < order.size(); i += static_cast<size_t>(world_size)) share.push_back(order[i]);
  return share;
}

}  // namespace

TEST_CASE("DistributedSampler: the ranks' shares of an epoch are disjoint slices of one order", "[ddp][sampler]") {
  for (int64_t dataset_size : {12, 13, 5, 2}) {
    INFO("dataset of " << dataset_size << ", " << world().size() << " ranks");
    auto sampler = distributed_sampler(dataset_size, {.shuffle = true, .seed = 42});
    const int64_t per_rank = (dataset_size + world().size() - 1) / world().size();
    CHECK(sampler->size() == per_rank);
    std::vector<int64_t> all = gather_shares(sampler->indices(0));
    REQUIRE(static_cast<int64_t>(all.size()) == per_rank * world().size());
    // Interleaved back into epoch order: position r + k * world is rank r's k-th index.
    std::vector<int64_t> order(all.size());
    for (int rank = 0; rank < world().size(); ++rank) {
      for (int64_t k = 0; k < per_rank; ++k) order[static_cast<size_t>(k * world().size() + rank)] = all[static_cast<size_t>(rank * per_rank + k)];
    }
    // The first dataset_size positions are a permutation (every example exactly once) ...
    std::vector<int64_t> head(order.begin(), order.begin() + dataset_size);
    std::vector<int64_t> sorted = head;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int64_t> expected(static_cast<size_t>(dataset_size));
    std::iota(expected.begin(), expected.end(), 0);
    CHECK(sorted == expected);
    // ... and the padding repeats the order's start, as PyTorch pads.
    for (size_t i = static_cast<size_t>(dataset_size); i < order.size(); ++i) CHECK(order[i] == order[i - static_cast<size_t>(dataset_size)]);
  }
}

TEST_CASE("DistributedSampler without shuffling yields PyTorch's indices", "[ddp][sampler]") {
  for (int64_t dataset_size : {10, 7, 1}) {
    auto sampler = distributed_sampler(dataset_size, {.shuffle = false});
    CHECK(sampler->indices(0) == pytorch_unshuffled(dataset_size, world().rank(), world().size()));
  }
}

TEST_CASE("DistributedSampler: a new epoch shuffles anew, the same on every rank", "[ddp][sampler]") {
  auto sampler = distributed_sampler(64, {.shuffle = true, .seed = 7});
  std::vector<int64_t> epoch0 = gather_shares(sampler->indices(0));
  std::vector<int64_t> epoch1 = gather_shares(sampler->indices(1));
  CHECK(epoch0 != epoch1);
  CHECK(gather_shares(sampler->indices(0)) == epoch0);  // a function of (seed, epoch) only
  // Every rank computed the same epoch order: rank 0's share as every rank sees it agrees.
  std::vector<double> first = testing::gather_scalar(static_cast<double>(epoch1.front()));
  for (double value : first) CHECK(value == first.front());
}

TEST_CASE("DistributedSampler drives a DataLoader: set_epoch picks the epoch's share", "[ddp][sampler]") {
  // Example i's target is i, so a batch's targets are the indices it read.
  auto numbers = std::make_shared<TensorDataset>(arange(10, {.dtype = kFloat64}).unsqueeze(1), arange(10));
  auto sampler = distributed_sampler(10, {.shuffle = true, .seed = 3});
  DataLoader loader(numbers, {.batch_size = 100, .sampler = sampler});
  for (int64_t epoch : {0, 2}) {
    loader.set_epoch(epoch);
    Batch batch = loader.next();
    CHECK(batch.targets.to_vector<int64_t>() == sampler->indices(epoch));
  }
}
