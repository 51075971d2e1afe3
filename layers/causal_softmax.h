#pragma once
// The softmax of causal attention: row i of scores [..., T, T] is normalised over columns 0..i
// only, and the columns after i (the future) get weight 0. It equals
// softmax(masked_fill(scores, causal_mask(T), -inf), -1) — bit for bit on the CPU in float32 and
// float64 — but is one kernel each way (Backend::causal_softmax) that never reads, exponentiates
// or writes a gradient for the masked half; the separate masked_fill was two more full passes.
#include "core/tensor.h"

namespace dtrain {

Tensor causal_softmax(const Tensor& scores);

namespace detail {
// softmax(masked_fill(scores, causal_mask(T), -inf), -1): the reference the kernels must match.
Tensor causal_softmax_composed(const Tensor& scores);
}  // namespace detail

}  // namespace dtrain
