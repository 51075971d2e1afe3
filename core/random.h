#pragma once
// Generator: a seed and a position in its Philox stream. A random op of n elements takes
// ceil(n / 2) blocks starting at offset and advances offset past them; element i uses block
// offset + i / 2, lane pair i % 2 (see core/philox.h). Saving (seed, offset) saves the state.
#include <cstdint>

#include "core/backend.h"

namespace dtrain {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  void manual_seed(uint64_t seed) {
    seed_ = seed;
    offset_ = 0;
  }
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_offset(uint64_t offset) { offset_ = offset; }
  // The stream position for an op of element_count elements; advances past it.
  RandomStream take(int64_t element_count) {
    RandomStream stream{seed_, offset_};
    offset_ += static_cast<uint64_t>((element_count + 1) / 2);
    return stream;
  }

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace dtrain
