// Shuffling, samplers and the DataLoader: orders that depend only on (seed, epoch), batching,
// drop_last, and resuming mid-epoch from a saved position.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "dtrain.h"

using namespace dtrain;
using Catch::Contains;

namespace {

// A dataset of n examples whose input is [i, 10 i] (float) and target i (int64), so a batch
// shows which examples it holds.
std::shared_ptr<TensorDataset> numbered_dataset(int64_t n) {
  std::vector<float> inputs;
  std::vector<int64_t> targets;
  for (int64_t i = 0; i < n; ++i) {
    inputs.push_back(static_cast<float>(i));
    inputs.push_back(static_cast<float>(10 * i));
    targets.push_back(i);
  }
  return std::make_shared<TensorDataset>(from_vector(inputs, {n, 2}), from_vector(targets, {n}));
}

// A dataset that only implements get(), so the default get_batch stacks examples.
class SquaresDataset : public Dataset {
 public:
  int64_t size() const override { return 5; }
  Example get(int64_t index) const override {
    check_index(index, "SquaresDataset::get");
    return Example{from_vector<float>({static_cast<float>(index), static_cast<float>(index * index)}),
                   scalar_tensor(index, kInt64)};
  }
};

bool is_permutation_of_range(std::vector<int64_t> order, int64_t n) {
  std::sort(order.begin(), order.end());
  for (int64_t i = 0; i < n; ++i) {
    if (order[static_cast<size_t>(i)] != i) return false;
  }
  return static_cast<int64_t>(order.size()) == n;
}

std::vector<int64_t> targets_of(const Batch& batch) { return batch.targets.to_vector<int64_t>(); }

// Every batch of an epoch, as the targets (example numbers) it holds.
std::vector<std::vector<int64_t>> one_epoch(DataLoader& loader) {
  std::vector<std::vector<int64_t>> batches;
  for (Batch& batch : loader) batches.push_back(targets_of(batch));
  return batches;
}

}  // namespace

TEST_CASE("shuffle: a permutation that depends only on seed and epoch") {
  std::vector<int64_t> order = shuffled_indices(1000, 42, 0);
  CHECK(is_permutation_of_range(order, 1000));
  CHECK(order == shuffled_indices(1000, 42, 0));
  CHECK(order != shuffled_indices(1000, 42, 1));
  CHECK(order != shuffled_indices(1000, 43, 0));
  std::vector<int64_t> identity(1000);
  for (int64_t i = 0; i < 1000; ++i) identity[static_cast<size_t>(i)] = i;
  CHECK(order != identity);
  CHECK(shuffled_indices(0, 1, 0).empty());
  CHECK(shuffled_indices(1, 1, 0) == std::vector<int64_t>{0});
  REQUIRE_THROWS_WITH(shuffled_indices(-1, 0, 0), Contains("count in [0, 2^32), got -1"));
}

TEST_CASE("shuffle: every position is equally likely (no modulo or Fisher-Yates bias)") {
  // Over many epochs of a 5-element shuffle, each element lands in each position ~1/5 of the time.
  constexpr int kEpochs = 20000;
  int counts[5][5] = {};
  for (int epoch = 0; epoch < kEpochs; ++epoch) {
    std::vector<int64_t> order = shuffled_indices(5, 7, static_cast<uint64_t>(epoch));
    for (int position = 0; position < 5; ++position) ++counts[order[static_cast<size_t>(position)]][position];
  }
  for (auto& row : counts) {
    for (int count : row) CHECK(std::abs(count - kEpochs / 5) < 300);  // ~5 standard deviations
  }
}

TEST_CASE("samplers: sequential and random") {
  SequentialSampler sequential(4);
  CHECK(sequential.size() == 4);
  CHECK(sequential.indices(0) == std::vector<int64_t>{0, 1, 2, 3});
  CHECK(sequential.indices(5) == std::vector<int64_t>{0, 1, 2, 3});

  RandomSampler random(50, 9);
  CHECK(random.size() == 50);
  CHECK(random.seed() == 9);
  CHECK(is_permutation_of_range(random.indices(0), 50));
  CHECK(random.indices(0) == shuffled_indices(50, 9, 0));
  CHECK(random.indices(3) == RandomSampler(50, 9).indices(3));
  CHECK(random.indices(0) != random.indices(1));
  random.set_seed(10);
  CHECK(random.indices(0) == shuffled_indices(50, 10, 0));
  REQUIRE_THROWS_WITH(SequentialSampler(-3), Contains("non-negative dataset size, got -3"));
  REQUIRE_THROWS_WITH(random.indices(-1), Contains("non-negative epoch, got -1"));
}

TEST_CASE("samplers: distributed shares are disjoint, padded as PyTorch pads them") {
  // 10 examples on 3 ranks: 4 each, the order padded with its first 2 entries.
  std::vector<int64_t> order = shuffled_indices(10, 5, 2);
  std::vector<int64_t> padded = order;
  padded.push_back(order[0]);
  padded.push_back(order[1]);
  std::multiset<int64_t> seen;
  for (int64_t rank = 0; rank < 3; ++rank) {
    DistributedSampler sampler(10, {.rank = rank, .world_size = 3, .shuffle = true, .seed = 5});
    CHECK(sampler.size() == 4);
    std::vector<int64_t> mine = sampler.indices(2);
    REQUIRE(mine.size() == 4);
    for (size_t k = 0; k < mine.size(); ++k) CHECK(mine[k] == padded[static_cast<size_t>(rank) + 3 * k]);
    seen.insert(mine.begin(), mine.end());
  }
  for (int64_t i = 0; i < 10; ++i) CHECK(seen.count(i) == (i == order[0] || i == order[1] ? 2u : 1u));

  // drop_last: 3 each, the last example of the order left out; no shuffle: in order.
  DistributedSampler last(10, {.rank = 2, .world_size = 3, .shuffle = false, .drop_last = true});
  CHECK(last.indices(0) == std::vector<int64_t>{2, 5, 8});
  // More ranks than examples: the order repeats to fill every rank.
  DistributedSampler tiny(2, {.rank = 4, .world_size = 5, .shuffle = false});
  CHECK(tiny.indices(0) == std::vector<int64_t>{0});
  REQUIRE_THROWS_WITH(DistributedSampler(10, {.rank = 3, .world_size = 3}), Contains("rank in [0, 3), got 3"));
}

TEST_CASE("dataloader: sequential batches, the last one smaller") {
  DataLoader loader(numbered_dataset(10), {.batch_size = 4});
  CHECK(loader.batches_per_epoch() == 3);
  std::vector<std::vector<int64_t>> batches = one_epoch(loader);
  CHECK(batches == std::vector<std::vector<int64_t>>{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}});
  Batch batch = loader.next();  // the next epoch starts over
  CHECK(batch.inputs.shape() == Shape{4, 2});
  CHECK(batch.inputs.to_vector<float>() == std::vector<float>{0, 0, 1, 10, 2, 20, 3, 30});
}

TEST_CASE("dataloader: drop_last leaves out the short batch") {
  DataLoader loader(numbered_dataset(10), {.batch_size = 4, .shuffle = true, .seed = 1, .drop_last = true});
  CHECK(loader.batches_per_epoch() == 2);
  std::vector<std::vector<int64_t>> batches = one_epoch(loader);
  REQUIRE(batches.size() == 2);
  for (const auto& batch : batches) CHECK(batch.size() == 4);
  REQUIRE_THROWS_WITH(DataLoader(numbered_dataset(3), {.batch_size = 4, .drop_last = true}),
                      Contains("at least one batch per epoch") && Contains("3 examples per epoch, batch size 4 with drop_last"));
}

TEST_CASE("dataloader: shuffled epochs visit every example once, in an order set by seed and epoch") {
  auto dataset = numbered_dataset(23);
  DataLoader loader(dataset, {.batch_size = 5, .shuffle = true, .seed = 77});
  std::vector<std::vector<int64_t>> epochs;
  for (int epoch = 0; epoch < 3; ++epoch) {
    std::vector<int64_t> order;
    for (Batch& batch : loader) {
      std::vector<int64_t> targets = targets_of(batch);
      order.insert(order.end(), targets.begin(), targets.end());
    }
    CHECK(loader.epoch() == epoch);
    CHECK(is_permutation_of_range(order, 23));  // every index exactly once
    CHECK(order == shuffled_indices(23, 77, static_cast<uint64_t>(epoch)));
    epochs.push_back(order);
  }
  CHECK(epochs[0] != epochs[1]);
  CHECK(epochs[1] != epochs[2]);

  // Another loader with the same seed sees the same orders; another seed does not.
  DataLoader same(dataset, {.batch_size = 5, .shuffle = true, .seed = 77});
  same.set_epoch(2);
  std::vector<int64_t> order;
  for (Batch& batch : same) {
    std::vector<int64_t> targets = targets_of(batch);
    order.insert(order.end(), targets.begin(), targets.end());
  }
  CHECK(order == epochs[2]);
  DataLoader other(dataset, {.batch_size = 23, .shuffle = true, .seed = 78});
  CHECK(targets_of(other.next()) != epochs[0]);
}

TEST_CASE("dataloader: resuming from a saved state yields the identical remaining batches") {
  auto dataset = numbered_dataset(37);
  DataLoaderOptions options{.batch_size = 4, .shuffle = true, .seed = 2024};
  DataLoader straight(dataset, options);
  std::vector<std::vector<int64_t>> expected;
  for (int step = 0; step < 25; ++step) expected.push_back(targets_of(straight.next()));  // crosses into epoch 2

  for (int stop : {0, 3, 9, 10, 13}) {
    INFO("stopped after " << stop << " batches");
    DataLoader first(dataset, options);
    for (int step = 0; step < stop; ++step) CHECK(targets_of(first.next()) == expected[static_cast<size_t>(step)]);
    DataLoaderState saved = first.state();

    // A new loader (as in a new process), built with a different seed: the state's seed wins.
    DataLoader resumed(dataset, {.batch_size = 4, .shuffle = true, .seed = 1});
    resumed.set_state(saved);
    CHECK(resumed.state() == saved);
    for (int step = stop; step < 25; ++step) CHECK(targets_of(resumed.next()) == expected[static_cast<size_t>(step)]);
  }

  // Through the range-for: stop mid-epoch, resume, and the epoch's remaining batches follow.
  DataLoader partial(dataset, options);
  auto iterator = partial.begin();
  ++iterator;  // two batches consumed
  DataLoaderState saved = partial.state();
  CHECK(saved.epoch == 0);
  CHECK(saved.batch == 2);
  DataLoader resumed(dataset, options);
  resumed.set_state(saved);
  std::vector<std::vector<int64_t>> rest = one_epoch(resumed);
  CHECK(rest == std::vector<std::vector<int64_t>>(expected.begin() + 2, expected.begin() + 10));
  CHECK(targets_of(resumed.next()) == expected[10]);  // then epoch 1

  REQUIRE_THROWS_WITH(resumed.set_state({.seed = 1, .epoch = 0, .batch = 11}), Contains("batch index in [0, 10], got 11"));
  REQUIRE_THROWS_WITH(resumed.set_state({.seed = 1, .epoch = -1, .batch = 0}), Contains("non-negative epoch, got -1"));
}

TEST_CASE("dataloader: a state at the end of an epoch resumes into the next one") {
  auto dataset = numbered_dataset(8);
  DataLoader loader(dataset, {.batch_size = 4, .shuffle = true, .seed = 5});
  one_epoch(loader);
  DataLoaderState saved = loader.state();
  CHECK(saved == DataLoaderState{.seed = 5, .epoch = 0, .batch = 2});
  DataLoader resumed(dataset, {.batch_size = 4, .shuffle = true, .seed = 5});
  resumed.set_state(saved);
  CHECK(one_epoch(resumed) == one_epoch(loader));
  CHECK(resumed.epoch() == 1);
}

TEST_CASE("dataloader: a distributed sampler plugs in, and datasets without get_batch are stacked") {
  auto dataset = numbered_dataset(10);
  auto sampler = std::make_shared<DistributedSampler>(10, DistributedSamplerOptions{.rank = 1, .world_size = 2, .seed = 4});
  DataLoader loader(dataset, {.batch_size = 2, .sampler = sampler});
  CHECK(loader.batches_per_epoch() == 3);
  std::vector<int64_t> seen;
  for (Batch& batch : loader) {
    std::vector<int64_t> targets = targets_of(batch);
    seen.insert(seen.end(), targets.begin(), targets.end());
  }
  CHECK(seen == sampler->indices(0));
  CHECK(loader.state().seed == 4);
  REQUIRE_THROWS_WITH(DataLoader(dataset, {.batch_size = 2, .shuffle = true, .sampler = sampler}),
                      Contains("either a sampler or shuffle, got both"));

  DataLoader stacked(std::make_shared<SquaresDataset>(), {.batch_size = 3});
  Batch batch = stacked.next();
  CHECK(batch.inputs.shape() == Shape{3, 2});
  CHECK(batch.inputs.to_vector<float>() == std::vector<float>{0, 0, 1, 1, 2, 4});
  CHECK(batch.targets.shape() == Shape{3});
  CHECK(batch.targets.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2});
}

TEST_CASE("collate: rows and stacks are checked") {
  Tensor source = from_vector<int32_t>({1, 2, 3, 4, 5, 6}, {3, 2});
  CHECK(gather_rows(source, {2, 0, 2}).to_vector<int32_t>() == std::vector<int32_t>{5, 6, 1, 2, 5, 6});
  CHECK(gather_rows(source.t(), {1}).to_vector<int32_t>() == std::vector<int32_t>{2, 4, 6});  // non-contiguous source
  CHECK(gather_rows(source, {}).shape() == Shape{0, 2});
  REQUIRE_THROWS_WITH(gather_rows(source, {0, 3}), Contains("indices in [0, 3), got 3 at position 1"));
  REQUIRE_THROWS_WITH(stack_rows({ones({2}), ones({3})}), Contains("shape [2]") && Contains("got shape [3]") && Contains("at tensor 1"));
  REQUIRE_THROWS_WITH(TensorDataset(ones({3, 2}), ones({2})), Contains("as many targets as inputs"));
  REQUIRE_THROWS_WITH(numbered_dataset(3)->get(3), Contains("index in [0, 3), got 3"));
}
