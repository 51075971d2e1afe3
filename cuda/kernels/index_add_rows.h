#pragma once
// index_add along dim 0 of a contiguous [rows, width] tensor — an embedding's weight gradient —
// with many indices: the generic kernel gives each of the `width` columns one thread that walks
// every index (768 threads for GPT-2, each 8192 steps long). This path stays on the device: it
// sorts the positions by target row (CUB's radix sort, which is stable: each row keeps its index
// order, so the sums are bitwise the generic kernel's and the CPU's), then the block of each sorted
// position that starts a run of equal rows adds that run, a thread per column. Nothing is read back
// to the host (the caller reads the bounds record, if it passed one).
#include <cstdint>

#include "core/tensor.h"

namespace dtrain::cuda {

struct IndexError;  // cuda/kernels/index_check.cuh (device code, kept out of this host header)

// Runs the sorted-rows path and returns true when it applies (dim 0, floating contiguous out and
// source of two dims, a 1-d index, sizes as cuda/kernels/index_add_rows_plan.h allows); returns
// false, having done nothing, otherwise. An index out of range is skipped and, when error is not
// null, recorded there (cuda/kernels/index_check.cuh).
bool index_add_rows(Tensor& out, int64_t dim, const Tensor& index, const Tensor& source, IndexError* error);

}  // namespace dtrain::cuda
