#include "data/shuffle.h"

#include <cstddef>
#include <utility>

#include "core/error.h"
#include "core/philox.h"

namespace dtrain {

namespace {

// 64-bit draws from Philox: counters (epoch << 32) + block, two draws per block. Each epoch owns
// 2^32 blocks, far more than a shuffle of fewer than 2^32 elements takes, so epochs never share
// random numbers.
class EpochStream {
 public:
  EpochStream(uint64_t seed, uint64_t epoch) : seed_(seed), base_(epoch << 32) {}

  uint64_t next() {
    if (lane_pair_ == 2) {
      block_ = philox4x32(seed_, base_ + counter_++);
      lane_pair_ = 0;
    }
    int pair = lane_pair_++;
    return (static_cast<uint64_t>(block_.lane[2 * pair]) << 32) | block_.lane[2 * pair + 1];
  }

  // Uniform in [0, bound) without modulo bias: draws below 2^64 mod bound are rejected, so every
  // residue has the same number of draws behind it (the method of PCG's bounded_rand).
  uint64_t below(uint64_t bound) {
    uint64_t threshold = (0 - bound) % bound;
    while (true) {
      uint64_t draw = next();
      if (draw >= threshold) return draw % bound;
    }
  }

 private:
  uint64_t seed_;
  uint64_t base_;
  uint64_t counter_ = 0;
  PhiloxBlock block_{};
  int lane_pair_ = 2;  // 2: the block is used up
};

}  // namespace

std::vector<int64_t> shuffled_indices(int64_t count, uint64_t seed, uint64_t epoch) {
  constexpr uint64_t kLimit = uint64_t{1} << 32;
  if (count < 0 || static_cast<uint64_t>(count) >= kLimit) {
    fail("shuffled_indices: expected a count in [0, 2^32), got ", count);
  }
  if (epoch >= kLimit) fail("shuffled_indices: expected an epoch below 2^32, got ", epoch);
  std::vector<int64_t> order(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) order[static_cast<size_t>(i)] = i;
  EpochStream stream(seed, epoch);
  for (int64_t i = count - 1; i > 0; --i) {
    auto j = static_cast<int64_t>(stream.below(static_cast<uint64_t>(i) + 1));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

}  // namespace dtrain
