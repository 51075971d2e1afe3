#pragma once
// The SGD update of one parameter, as PyTorch documents it and its single-tensor path does it:
//   g = grad (+ weight_decay * p)
//   with momentum: b = g on the first step, else b = momentum * b + (1 - dampening) * g;
//                  g = g + momentum * b (nesterov) or g = b
//   p = p - lr * g
// Two paths compute it: one fused loop over contiguous float32/float64 CPU memory, and in-place
// tensor ops for anything else.
#include "core/tensor.h"

namespace dtrain::optim {

struct SgdHyperParameters {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

// momentum_buffer is undefined when momentum is 0; first_step says it holds no history yet (it
// is then set to the gradient, without dampening, as PyTorch does).
void sgd_update(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, bool first_step,
                const SgdHyperParameters& hyper, bool allow_fused);

}  // namespace dtrain::optim
