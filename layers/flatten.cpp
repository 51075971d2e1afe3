#include "layers/flatten.h"

#include "core/ops/view.h"

namespace dtrain {

Tensor Flatten::forward(const Tensor& x) { return flatten(x, start_dim_, end_dim_); }

}  // namespace dtrain
