#pragma once
// Samplers decide which examples an epoch visits and in what order; the DataLoader only cuts
// that order into batches. An epoch's order depends on nothing but the sampler's settings and
// the epoch number, which is what makes a loader's position resumable.
#include <cstdint>
#include <vector>

namespace dtrain {

class Sampler {
 public:
  virtual ~Sampler() = default;
  // How many indices each epoch yields.
  virtual int64_t size() const = 0;
  // The example indices of epoch, in visiting order.
  virtual std::vector<int64_t> indices(int64_t epoch) const = 0;
  // The seed of the order (0 for orders that use none). A loader saves it with its position and
  // restores it on resume, so the resumed run replays the saved run's order.
  virtual uint64_t seed() const { return 0; }
  virtual void set_seed(uint64_t seed) {}
};

// 0, 1, ..., dataset_size - 1 every epoch.
class SequentialSampler : public Sampler {
 public:
  explicit SequentialSampler(int64_t dataset_size);
  int64_t size() const override { return dataset_size_; }
  std::vector<int64_t> indices(int64_t epoch) const override;

 private:
  int64_t dataset_size_;
};

// A fresh permutation every epoch, a function of (seed, epoch) only.
class RandomSampler : public Sampler {
 public:
  RandomSampler(int64_t dataset_size, uint64_t seed);
  int64_t size() const override { return dataset_size_; }
  std::vector<int64_t> indices(int64_t epoch) const override;
  uint64_t seed() const override { return seed_; }
  void set_seed(uint64_t seed) override { seed_ = seed; }

 private:
  int64_t dataset_size_;
  uint64_t seed_;
};

// Each of world_size ranks gets a disjoint share of every epoch, as PyTorch's DistributedSampler
// does it: the (optionally shuffled) order is padded by repeating its start until it divides
// evenly (or cut to a multiple with drop_last), and rank r takes positions r, r + world_size, ...
// Every rank must use the same seed; the shuffle is the same on all of them.
struct DistributedSamplerOptions {
  int64_t rank = 0;
  int64_t world_size = 1;
  bool shuffle = true;
  uint64_t seed = 0;
  bool drop_last = false;
};

class DistributedSampler : public Sampler {
 public:
  DistributedSampler(int64_t dataset_size, DistributedSamplerOptions options);
  int64_t size() const override { return per_rank_; }
  std::vector<int64_t> indices(int64_t epoch) const override;
  uint64_t seed() const override { return options_.seed; }
  void set_seed(uint64_t seed) override { options_.seed = seed; }

 private:
  int64_t dataset_size_;
  DistributedSamplerOptions options_;
  int64_t per_rank_;
};

}  // namespace dtrain
