#pragma once
// Seeded permutations for shuffling datasets. Counter-based (Philox), so an epoch's order is a
// pure function of (seed, epoch): a resumed run, another rank or another machine computes the
// same order without replaying earlier epochs.
#include <cstdint>
#include <vector>

namespace dtrain {

// A permutation of 0 .. count-1 by Fisher-Yates, its swaps drawn from the Philox stream keyed by
// seed at the counters reserved for epoch. count and epoch must be below 2^32.
std::vector<int64_t> shuffled_indices(int64_t count, uint64_t seed, uint64_t epoch);

}  // namespace dtrain
