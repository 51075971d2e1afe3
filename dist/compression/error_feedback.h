#pragma once
// ErrorFeedback: the per-bucket residuals of a compression with error feedback (Seide et al.
// 2014; Karimireddy et al. 2019; PyTorch's PowerSGDState.error_dict). Each step a rank
//   compensated = gradient + residual         (compensate)
//   sent        = what it contributes, compressed
//   residual    = compensated - sent          (the compression writes it, element by element)
// so what one step's compression leaves out is added to the next step's gradient: nothing is
// lost, only delayed.
//
// Exactness of the invariant sent + residual == compensated. The residual is one floating-point
// subtraction, correctly rounded. When the exact difference is representable the subtraction is
// exact and the invariant holds bitwise: top-k (sent is the value itself or zero) and int8 with
// power-of-two scales (see dist/compression/quantized_compression.h). For 1-bit and PowerSGD the
// difference is rounded once: |sent + residual - compensated| <= u |compensated - sent|, with u
// the dtype's unit roundoff (2^-24 for float32).
//
// Residuals are keyed by the bucket index (HookBucket::index, the same every step) and live on
// the device and in the dtype of the tensor they compensate; one loaded from a checkpoint is moved
// there on first use.
#include <cstddef>
#include <map>
#include <string>
#include <utility>

#include "core/tensor.h"
#include "layers/state_dict.h"
#include "optim/state_dict.h"

namespace dtrain::dist {

class ErrorFeedback {
 public:
  // In place: input += the bucket's residual, which starts as zeros the first time a bucket is
  // seen. Raises when the bucket's size differs from its residual's (a checkpoint of another
  // model or bucket layout).
  void compensate(size_t bucket_index, Tensor& input);
  // The bucket's residual, flat, typed and placed as the input of the last
  // compensate(bucket_index, ...) (which must have run): the compression writes into it.
  Tensor residual(size_t bucket_index) const;
  bool has_residual(size_t bucket_index) const { return residuals_.count(bucket_index) != 0; }

  // "residual.<bucket index>": copies.
  void save(StateDict& state) const;
  // Every "residual.<index>" of state (copies); records a problem for an entry that is not a
  // flat floating-point tensor. Apply with replace() once every key checked out.
  std::map<size_t, Tensor> read(const optim::StateDict& state, optim::StateDictProblems& problems) const;
  void replace(std::map<size_t, Tensor> residuals) { residuals_ = std::move(residuals); }

 private:
  std::map<size_t, Tensor> residuals_;
};

}  // namespace dtrain::dist
