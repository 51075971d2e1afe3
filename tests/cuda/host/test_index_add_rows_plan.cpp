// The sorted-rows index_add's host plan (cuda/kernels/index_add_rows_plan.h): when it applies, the
// radix sort's key bits (enough for every row and the out-of-range key `rows`, no more), the grid,
// and a scratch layout whose parts are aligned and never overlap.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "cuda/kernels/index_add_rows_plan.h"

using namespace dtrain::cuda;

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = int64_t{1} << 20;

// The smallest b with 2^b > value: bits that hold 0..value.
int bits_for(uint64_t value) {
  int bits = 0;
  while (bits < 64 && (uint64_t{1} << bits) <= value) ++bits;
  return bits;
}

}  // namespace

TEST_CASE("index_add rows plan: applies to an embedding gradient, not to few indices or degenerate sizes") {
  const IndexAddRowsPlan gpt2 = plan_index_add_rows(50257, 768, 8192, kThreads, kMaxBlocks);
  REQUIRE(gpt2.applies);
  CHECK(gpt2.key_bits == 16);      // 50257 < 2^16: keys 0..50257 fit
  CHECK(gpt2.blocks_x == 8192);    // one block per sorted position
  CHECK(gpt2.blocks_y == 3);       // 768 columns in tiles of 256
  CHECK(plan_index_add_rows(50257, 768, kMinIndicesForRows, kThreads, kMaxBlocks).applies);
  CHECK_FALSE(plan_index_add_rows(50257, 768, kMinIndicesForRows - 1, kThreads, kMaxBlocks).applies);
  CHECK_FALSE(plan_index_add_rows(0, 768, 8192, kThreads, kMaxBlocks).applies);
  CHECK_FALSE(plan_index_add_rows(10, 0, 8192, kThreads, kMaxBlocks).applies);
  // Keys are 32-bit with `rows` as the out-of-range key; positions are 32-bit.
  CHECK_FALSE(plan_index_add_rows(int64_t{std::numeric_limits<uint32_t>::max()}, 8, 8192, kThreads, kMaxBlocks).applies);
  CHECK(plan_index_add_rows(int64_t{std::numeric_limits<uint32_t>::max()} - 1, 8, 8192, kThreads, kMaxBlocks).applies);
  CHECK_FALSE(plan_index_add_rows(100, 8, int64_t{std::numeric_limits<int32_t>::max()} + 1, kThreads, kMaxBlocks).applies);
  // gridDim.y holds at most 65535 column tiles.
  CHECK(plan_index_add_rows(100, int64_t{65535} * kThreads, 300, kThreads, kMaxBlocks).applies);
  CHECK_FALSE(plan_index_add_rows(100, int64_t{65535} * kThreads + 1, 300, kThreads, kMaxBlocks).applies);
}

TEST_CASE("index_add rows plan: key bits hold every row and the out-of-range key, and no more") {
  for (int64_t rows : {int64_t{1}, int64_t{2}, int64_t{3}, int64_t{255}, int64_t{256}, int64_t{50257}, int64_t{65535},
                       int64_t{65536}, int64_t{1} << 31}) {
    INFO("rows " << rows);
    const IndexAddRowsPlan plan = plan_index_add_rows(rows, 16, 1000, kThreads, kMaxBlocks);
    REQUIRE(plan.applies);
    CHECK(plan.key_bits == bits_for(static_cast<uint64_t>(rows)));
    CHECK((uint64_t{1} << plan.key_bits) > static_cast<uint64_t>(rows));        // the key `rows` fits
    CHECK((uint64_t{1} << (plan.key_bits - 1)) <= static_cast<uint64_t>(rows));  // one bit fewer would not
  }
}

TEST_CASE("index_add rows plan: the grid is capped and loops over the rest") {
  const IndexAddRowsPlan plan = plan_index_add_rows(1000, 100, 3'000'000, kThreads, kMaxBlocks);
  REQUIRE(plan.applies);
  CHECK(plan.blocks_x == kMaxBlocks);
  CHECK(plan.blocks_y == 1);
}

TEST_CASE("index_add rows scratch: parts aligned, in order, not overlapping, total covering all") {
  for (int64_t count : {int64_t{256}, int64_t{257}, int64_t{8192}, int64_t{1000003}}) {
    for (size_t storage : {size_t{0}, size_t{1}, size_t{4097}}) {
      INFO("count " << count << " sort storage " << storage);
      const IndexAddRowsScratch layout = index_add_rows_scratch(count, storage);
      const size_t entries = static_cast<size_t>(count);
      const std::vector<std::pair<size_t, size_t>> parts{{layout.keys, entries * 4},
                                                         {layout.sorted_keys, entries * 4},
                                                         {layout.positions, entries * 4},
                                                         {layout.sorted_positions, entries * 4},
                                                         {layout.sort_storage, storage}};
      for (size_t i = 0; i < parts.size(); ++i) {
        CHECK(parts[i].first % kScratchAlignment == 0);
        const size_t end = parts[i].first + parts[i].second;
        if (i + 1 < parts.size()) CHECK(end <= parts[i + 1].first);
        else CHECK(end <= layout.total);
      }
      // No more than an alignment's worth of padding per part.
      CHECK(layout.total < entries * 16 + storage + parts.size() * kScratchAlignment);
    }
  }
}
