#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace dtrain {

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

}  // namespace dtrain
