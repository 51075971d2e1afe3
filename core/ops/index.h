#pragma once
// Indexing by tensors of Int64 (or Int32) positions.
#include <cstdint>

#include "core/tensor.h"

namespace dtrain {

// out[i][j] = x[i][index[i][j]] along dim (as torch.gather).
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// A copy of x with source added at index along dim (as torch.scatter_add).
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& source);
// The slices of x at the positions in a 1-d index along dim.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// A copy of x with source's slices added at the positions of a 1-d index along dim.
Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& source);

}  // namespace dtrain
