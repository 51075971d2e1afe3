#pragma once
// index_add along dim 0 of a contiguous [rows, width] tensor — an embedding's weight gradient —
// with many indices: the generic kernel gives each of the `width` columns one thread that walks
// every index (768 threads for GPT-2, each 8192 steps long). This path sorts the positions by
// target row on the host (stably: each row keeps its index order, so the sums are bitwise the
// generic kernel's), then a block per distinct row adds that row's source rows, a thread per
// column. The host needs the index anyway: index ops check it and wait for the device.
#include <cstdint>

#include "core/tensor.h"

namespace dtrain::cuda {

// Runs the sorted-rows path and returns true when it applies (dim 0, floating contiguous out and
// source of two dims, a 1-d index); returns false, having done nothing, otherwise. Raises the
// generic kernel's message for an index out of range.
bool index_add_rows(Tensor& out, int64_t dim, const Tensor& index, const Tensor& source);

}  // namespace dtrain::cuda
