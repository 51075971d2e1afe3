#pragma once
// Gradient clipping by total norm, as torch.nn.utils.clip_grad_norm_.
#include <limits>
#include <vector>

#include "core/tensor.h"

namespace dtrain::optim {

inline constexpr double kInfinityNorm = std::numeric_limits<double>::infinity();

// The norm of all parameters' gradients taken together, as if concatenated into one vector
// (norm_type p > 0, or kInfinityNorm for the largest magnitude). Parameters without a gradient
// are skipped. Accumulates in double.
double total_grad_norm(const std::vector<Tensor>& parameters, double norm_type = 2.0);

// Scales every gradient in place by max_norm / (total + 1e-6) when that is below 1, so that
// the total norm becomes at most max_norm; returns the total norm from before clipping. A
// non-finite total is returned as it is and leaves the gradients unchanged (the step should
// be skipped; DynamicLossScaler does that for fp16).
double clip_grad_norm(const std::vector<Tensor>& parameters, double max_norm, double norm_type = 2.0);

}  // namespace dtrain::optim
