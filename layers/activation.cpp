#include "layers/activation.h"

namespace dtrain {

Tensor ReLU::forward(const Tensor& x) { return relu(x); }

Tensor GELU::forward(const Tensor& x) { return gelu(x, approximation_); }

}  // namespace dtrain
