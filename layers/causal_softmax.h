#pragma once
// The softmax of causal attention: row i of scores [..., T, T] is normalised over columns 0..i
// only, and the columns after i (the future) get weight 0. It equals
// softmax(masked_fill(scores, causal_mask(T), -inf), -1) bit for bit, but on CPU float32/float64
// it is one pass each way that never reads, exponentiates or writes a gradient for the masked
// half (the separate masked_fill was two more full passes, forward and backward). Other devices
// and dtypes run that composition.
#include "core/tensor.h"

namespace dtrain {

Tensor causal_softmax(const Tensor& scores);

namespace detail {
// softmax(masked_fill(scores, causal_mask(T), -inf), -1): the reference the fused path must match.
Tensor causal_softmax_composed(const Tensor& scores);
}  // namespace detail

}  // namespace dtrain
