#include "data/dataloader.h"

#include <algorithm>

#include "core/error.h"

namespace dtrain {

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options)
    : dataset_(std::move(dataset)), sampler_(std::move(options.sampler)), batch_size_(options.batch_size),
      drop_last_(options.drop_last) {
  if (!dataset_) fail("DataLoader: expected a dataset, got a null pointer");
  if (batch_size_ < 1) fail("DataLoader: expected a batch size of at least 1, got ", batch_size_);
  if (sampler_) {
    if (options.shuffle) {
      fail("DataLoader: expected either a sampler or shuffle, got both (the sampler decides the order; shuffle with it)");
    }
  } else if (options.shuffle) {
    sampler_ = std::make_shared<RandomSampler>(dataset_->size(), options.seed);
  } else {
    sampler_ = std::make_shared<SequentialSampler>(dataset_->size());
  }
  int64_t count = sampler_->size();
  batches_per_epoch_ = drop_last_ ? count / batch_size_ : (count + batch_size_ - 1) / batch_size_;
  if (batches_per_epoch_ == 0) {
    // An epoch without batches would make next() spin through epochs forever.
    fail("DataLoader: expected at least one batch per epoch, got none: ", count, " examples per epoch, batch size ",
         batch_size_, drop_last_ ? " with drop_last" : "");
  }
}

const std::vector<int64_t>& DataLoader::order() {
  if (order_epoch_ != epoch_ || order_seed_ != sampler_->seed()) {
    order_ = sampler_->indices(epoch_);
    if (static_cast<int64_t>(order_.size()) != sampler_->size()) {
      fail("DataLoader: the sampler promised ", sampler_->size(), " indices per epoch, got ", order_.size(),
           " for epoch ", epoch_);
    }
    order_epoch_ = epoch_;
    order_seed_ = sampler_->seed();
  }
  return order_;
}

std::vector<int64_t> DataLoader::next_indices() {
  if (batch_ >= batches_per_epoch_) set_epoch(epoch_ + 1);
  const std::vector<int64_t>& indices = order();
  size_t begin = static_cast<size_t>(batch_ * batch_size_);
  size_t end = std::min(begin + static_cast<size_t>(batch_size_), indices.size());
  ++batch_;
  return std::vector<int64_t>(indices.begin() + static_cast<std::ptrdiff_t>(begin),
                              indices.begin() + static_cast<std::ptrdiff_t>(end));
}

Batch DataLoader::next() { return dataset_->get_batch(next_indices()); }

void DataLoader::set_epoch(int64_t epoch) {
  if (epoch < 0) fail("DataLoader::set_epoch: expected a non-negative epoch, got ", epoch);
  epoch_ = epoch;
  batch_ = 0;
}

DataLoaderState DataLoader::state() const { return DataLoaderState{sampler_->seed(), epoch_, batch_}; }

void DataLoader::set_state(const DataLoaderState& state) {
  if (state.epoch < 0) fail("DataLoader::set_state: expected a non-negative epoch, got ", state.epoch);
  if (state.batch < 0 || state.batch > batches_per_epoch_) {
    fail("DataLoader::set_state: expected a batch index in [0, ", batches_per_epoch_, "], got ", state.batch,
         " (was the state saved with another dataset size, batch size or drop_last?)");
  }
  sampler_->set_seed(state.seed);
  epoch_ = state.epoch;
  batch_ = state.batch;
}

DataLoader::Iterator DataLoader::begin() {
  if (!epoch_has_next()) set_epoch(epoch_ + 1);
  return Iterator(this);
}

DataLoader::Iterator::Iterator(DataLoader* loader) : loader_(loader) { advance(); }

DataLoader::Iterator& DataLoader::Iterator::operator++() {
  advance();
  return *this;
}

void DataLoader::Iterator::advance() {
  if (loader_ == nullptr) return;
  if (!loader_->epoch_has_next()) {
    loader_ = nullptr;  // the epoch is done: equal to end()
    current_ = Batch{};
    return;
  }
  current_ = loader_->next();
}

}  // namespace dtrain
