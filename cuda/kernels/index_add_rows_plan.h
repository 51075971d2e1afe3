#pragma once
// The host-side plan of the sorted-rows index_add (cuda/kernels/index_add_rows.cu): whether it
// applies, how many key bits the radix sort needs, how its one scratch buffer is laid out, and the
// launch of the kernel that adds each run of equal rows. Pure host code, a function of the sizes
// alone, tested on any machine (tests/cuda/host/test_index_add_rows_plan.cpp).
#include <cstddef>
#include <cstdint>

namespace dtrain::cuda {

// Fewer indices than this take the generic kernel (a thread per column walking the index), which
// is one launch where the sorted path is four.
inline constexpr int64_t kMinIndicesForRows = 256;

struct IndexAddRowsPlan {
  bool applies = false;  // false: take the generic kernel
  // The sort's keys are the target rows as uint32, with `rows` itself the key of an index out of
  // range (it sorts after every valid row, and its run is skipped); key_bits bits hold 0..rows.
  int key_bits = 0;
  // Blocks of the run-adding kernel: x over sorted positions (a block whose position starts a run
  // adds that run; the others return at once), y over tiles of `threads` columns.
  int64_t blocks_x = 0;
  int64_t blocks_y = 0;
};

// rows and width: out's [rows, width]; count: the index's entries (source's rows).
IndexAddRowsPlan plan_index_add_rows(int64_t rows, int64_t width, int64_t count, int threads, int64_t max_blocks_x);

// One scratch buffer for the sort: keys and positions, in and sorted, then CUB's temporary
// storage, each part starting at a multiple of kScratchAlignment bytes.
inline constexpr size_t kScratchAlignment = 256;
struct IndexAddRowsScratch {
  size_t keys = 0;              // uint32 [count]
  size_t sorted_keys = 0;       // uint32 [count]
  size_t positions = 0;         // int32 [count]: 0, 1, ..., count - 1
  size_t sorted_positions = 0;  // int32 [count]: positions ordered by key, stably
  size_t sort_storage = 0;      // sort_storage_bytes for cub::DeviceRadixSort::SortPairs
  size_t total = 0;
};
IndexAddRowsScratch index_add_rows_scratch(int64_t count, size_t sort_storage_bytes);

}  // namespace dtrain::cuda
