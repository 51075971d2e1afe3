#pragma once
#include "core/tensor.h"

namespace dtrain {

// As torch.matmul: 1-d operands are promoted to matrices and the added dim removed again;
// batch dimensions broadcast. Raises naming both shapes when the inner sizes differ.
Tensor matmul(const Tensor& a, const Tensor& b);

}  // namespace dtrain
