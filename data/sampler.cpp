#include "data/sampler.h"

#include <cstddef>

#include "core/error.h"
#include "data/shuffle.h"

namespace dtrain {

namespace {
void check_dataset_size(int64_t dataset_size, const char* who) {
  if (dataset_size < 0) fail(who, ": expected a non-negative dataset size, got ", dataset_size);
}

void check_epoch(int64_t epoch, const char* who) {
  if (epoch < 0) fail(who, ": expected a non-negative epoch, got ", epoch);
}

std::vector<int64_t> identity(int64_t count) {
  std::vector<int64_t> order(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) order[static_cast<size_t>(i)] = i;
  return order;
}
}  // namespace

SequentialSampler::SequentialSampler(int64_t dataset_size) : dataset_size_(dataset_size) {
  check_dataset_size(dataset_size, "SequentialSampler");
}

std::vector<int64_t> SequentialSampler::indices(int64_t epoch) const {
  check_epoch(epoch, "SequentialSampler::indices");
  return identity(dataset_size_);
}

RandomSampler::RandomSampler(int64_t dataset_size, uint64_t seed) : dataset_size_(dataset_size), seed_(seed) {
  check_dataset_size(dataset_size, "RandomSampler");
}

std::vector<int64_t> RandomSampler::indices(int64_t epoch) const {
  check_epoch(epoch, "RandomSampler::indices");
  return shuffled_indices(dataset_size_, seed_, static_cast<uint64_t>(epoch));
}

DistributedSampler::DistributedSampler(int64_t dataset_size, DistributedSamplerOptions options)
    : dataset_size_(dataset_size), options_(options) {
  check_dataset_size(dataset_size, "DistributedSampler");
  if (options.world_size < 1) fail("DistributedSampler: expected a world size of at least 1, got ", options.world_size);
  if (options.rank < 0 || options.rank >= options.world_size) {
    fail("DistributedSampler: expected a rank in [0, ", options.world_size, "), got ", options.rank);
  }
  // As PyTorch: drop_last cuts the tail so every rank gets floor(N / W); otherwise the order is
  // padded so every rank gets ceil(N / W).
  per_rank_ = options.drop_last ? dataset_size / options.world_size
                                : (dataset_size + options.world_size - 1) / options.world_size;
}

std::vector<int64_t> DistributedSampler::indices(int64_t epoch) const {
  check_epoch(epoch, "DistributedSampler::indices");
  std::vector<int64_t> order = options_.shuffle ? shuffled_indices(dataset_size_, options_.seed, static_cast<uint64_t>(epoch))
                                                : identity(dataset_size_);
  int64_t total = per_rank_ * options_.world_size;
  if (total > dataset_size_ && dataset_size_ > 0) {
    // Padding repeats the order from its start (several times over when it is shorter than the
    // padding), so the duplicated examples differ from epoch to epoch when shuffling.
    size_t original = order.size();
    for (size_t i = 0; order.size() < static_cast<size_t>(total); ++i) order.push_back(order[i % original]);
  }
  std::vector<int64_t> mine;
  mine.reserve(static_cast<size_t>(per_rank_));
  for (int64_t position = options_.rank; position < total; position += options_.world_size) {
    mine.push_back(order[static_cast<size_t>(position)]);
  }
  return mine;
}

}  // namespace dtrain
