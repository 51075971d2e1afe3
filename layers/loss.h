#pragma once
// Losses: cross-entropy (fused log-softmax + negative log-likelihood) and mean squared error.
#include <cstdint>

#include "core/tensor.h"

namespace dtrain {

enum class Reduction { Mean, Sum, None };

struct CrossEntropyOptions {
  int64_t ignore_index = -100;   // rows with this target count neither in the loss nor in the mean
  double label_smoothing = 0.0;  // the target distribution is (1 - s) one-hot + s / classes
  Reduction reduction = Reduction::Mean;
};

// logits [..., C] with the classes on the last dim ([N, C], or [B, T, C] as a language model
// makes them), targets [...] of Int64 (or Int32) class ids. Mean: the average over the rows
// whose target is not ignore_index (NaN when every row is ignored, as PyTorch). None: the
// per-row losses in targets' shape, 0 where ignored. Float32 and float64 CPU logits take one
// fused pass each way and keep no [rows, C] tensor for backward beyond the logits.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, CrossEntropyOptions options = {});

// (input - target)^2, reduced; input and target of one shape.
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);

namespace detail {
// cross_entropy built from tensor ops (the path for other devices and dtypes); public so tests
// can hold the fused kernel against it.
Tensor cross_entropy_composed(const Tensor& logits, const Tensor& targets, CrossEntropyOptions options);
}  // namespace detail

}  // namespace dtrain
