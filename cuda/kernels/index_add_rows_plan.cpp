#include "cuda/kernels/index_add_rows_plan.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>

namespace dtrain::cuda {
namespace {

size_t aligned(size_t bytes) { return (bytes + kScratchAlignment - 1) / kScratchAlignment * kScratchAlignment; }

}  // namespace

IndexAddRowsPlan plan_index_add_rows(int64_t rows, int64_t width, int64_t count, int threads, int64_t max_blocks_x) {
  IndexAddRowsPlan plan;
  // Keys hold 0..rows and positions 0..count-1 in 32 bits; columns tile gridDim.y (at most 65535).
  const int64_t column_tiles = width > 0 ? (width + threads - 1) / threads : 0;
  if (count < kMinIndicesForRows || rows <= 0 || width <= 0 || rows >= std::numeric_limits<uint32_t>::max() ||
      count > std::numeric_limits<int32_t>::max() || column_tiles > 65535) {
    return plan;
  }
  plan.applies = true;
  plan.key_bits = std::bit_width(static_cast<uint64_t>(rows));
  plan.blocks_x = std::min(count, max_blocks_x);
  plan.blocks_y = column_tiles;
  return plan;
}

IndexAddRowsScratch index_add_rows_scratch(int64_t count, size_t sort_storage_bytes) {
  const size_t entries = static_cast<size_t>(std::max<int64_t>(count, 0));
  IndexAddRowsScratch scratch;
  scratch.keys = 0;
  scratch.sorted_keys = scratch.keys + aligned(entries * sizeof(uint32_t));
  scratch.positions = scratch.sorted_keys + aligned(entries * sizeof(uint32_t));
  scratch.sorted_positions = scratch.positions + aligned(entries * sizeof(int32_t));
  scratch.sort_storage = scratch.sorted_positions + aligned(entries * sizeof(int32_t));
  scratch.total = scratch.sort_storage + aligned(sort_storage_bytes);
  return scratch;
}

}  // namespace dtrain::cuda
