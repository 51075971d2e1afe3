#pragma once
// DataLoader: cuts a sampler's order into batches and reads them from a dataset. Its position
// (seed, epoch, batch) is the whole of its state: saved with a training checkpoint and restored
// with set_state, it resumes the exact batch sequence the saved run would have seen.
//
//   DataLoader loader(dataset, {.batch_size = 128, .shuffle = true, .seed = 1});
//   for (int epoch = 0; epoch < 2; ++epoch)
//     for (Batch& batch : loader) step(batch.inputs, batch.targets);  // one epoch per loop
//
// or, for a step-based loop, loader.next() forever (it rolls over into the next epoch).
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <vector>

#include "data/dataset.h"
#include "data/sampler.h"

namespace dtrain {

struct DataLoaderOptions {
  int64_t batch_size = 1;
  bool shuffle = false;  // a RandomSampler with seed; else a SequentialSampler
  uint64_t seed = 0;
  bool drop_last = false;  // leave out the last, smaller batch of an epoch
  // Orders the examples instead of shuffle/seed (a DistributedSampler for data parallelism).
  std::shared_ptr<Sampler> sampler = nullptr;
};

// Where a loader stands: the next batch it yields is batch `batch` of epoch `epoch` in the order
// of `seed`. batch == batches_per_epoch() means the epoch is done. Inside a range-for body the
// batch at hand already counts as consumed, so a checkpoint saved after the step resumes with the
// batch after it.
struct DataLoaderState {
  uint64_t seed = 0;
  int64_t epoch = 0;
  int64_t batch = 0;
  friend bool operator==(const DataLoaderState&, const DataLoaderState&) = default;
};

class DataLoader {
 public:
  DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options);

  int64_t batch_size() const { return batch_size_; }
  int64_t batches_per_epoch() const { return batches_per_epoch_; }
  int64_t epoch() const { return epoch_; }
  const Dataset& dataset() const { return *dataset_; }
  Sampler& sampler() const { return *sampler_; }

  // The next batch; after an epoch's last batch it starts the next epoch.
  Batch next();
  // The example indices next() would read, consuming them as next() does.
  std::vector<int64_t> next_indices();
  // Whether the current epoch has batches left.
  bool epoch_has_next() const { return batch_ < batches_per_epoch_; }
  // Moves to the start of epoch.
  void set_epoch(int64_t epoch);

  DataLoaderState state() const;
  // Restores a position from state() (the sampler takes the saved seed). Raises for a negative
  // epoch or a batch outside [0, batches_per_epoch()].
  void set_state(const DataLoaderState& state);

  // Iterates over the rest of the current epoch, or over the next epoch when the current one is
  // done, so consecutive loops walk consecutive epochs.
  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;
    using pointer = Batch*;
    using reference = Batch&;

    Iterator() = default;
    explicit Iterator(DataLoader* loader);
    Batch& operator*() { return current_; }
    Batch* operator->() { return &current_; }
    Iterator& operator++();
    void operator++(int) { ++*this; }
    friend bool operator==(const Iterator& iterator, std::default_sentinel_t) { return iterator.loader_ == nullptr; }

   private:
    void advance();
    DataLoader* loader_ = nullptr;
    Batch current_;
  };
  Iterator begin();
  std::default_sentinel_t end() { return std::default_sentinel; }

 private:
  const std::vector<int64_t>& order();  // the current epoch's indices, computed once per epoch

  std::shared_ptr<const Dataset> dataset_;
  std::shared_ptr<Sampler> sampler_;
  int64_t batch_size_;
  bool drop_last_;
  int64_t batches_per_epoch_ = 0;
  int64_t epoch_ = 0;
  int64_t batch_ = 0;
  std::vector<int64_t> order_;
  int64_t order_epoch_ = -1;  // the epoch order_ belongs to; -1: none yet
  uint64_t order_seed_ = 0;
};

}  // namespace dtrain
