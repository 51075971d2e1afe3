#pragma once
// GradientBucket: one flat buffer holding the gradients of several parameters back to back, so
// that one all-reduce moves them all.
//
// Each parameter's .grad() becomes a view into its slot of the buffer (PyTorch's
// gradient_as_bucket_view): backward accumulates straight into the memory the all-reduce works
// on, and after the reduction the optimizer reads the averaged gradients where they lie — no
// copy into the bucket before the all-reduce and none back out after it, and no second copy of
// the gradients in memory. A gradient that arrives as a tensor of its own (the first backward
// after Optimizer::zero_grad, which drops every .grad() as PyTorch's set_to_none does) is copied
// into its slot once and then replaced by the view; later backwards without zero_grad (gradient
// accumulation) add into the view in place.
#include <cstddef>
#include <vector>

#include "core/tensor.h"

namespace dtrain::dist {

class GradientBucket {
 public:
  // parameter_indices: which of `parameters` this bucket holds, in buffer order. All of them
  // have one dtype and device. The buffer is counted as MemoryTag::Gradients, since it is where
  // the gradients live.
  GradientBucket(std::vector<size_t> parameter_indices, const std::vector<Tensor>& parameters);

  const std::vector<size_t>& parameter_indices() const { return parameter_indices_; }
  size_t member_count() const { return parameter_indices_.size(); }
  Tensor& buffer() { return buffer_; }
  const Tensor& buffer() const { return buffer_; }

  // The slot of member (a position in parameter_indices()), shaped like its parameter.
  const Tensor& slot(size_t member) const { return slots_.at(member); }
  // Every member's slot, in buffer order (what a communication hook sees as the gradients).
  const std::vector<Tensor>& slots() const { return slots_; }
  // Whether gradient is the slot of member itself (a view of the same bytes and layout).
  bool is_slot(size_t member, const Tensor& gradient) const;
  // Makes parameter's .grad() the slot of member, copying the gradient it has into the slot
  // first when that gradient lives elsewhere. The parameter must have a gradient.
  void adopt_gradient(size_t member, Tensor parameter);
  // Zeros the slot of a member whose parameter has no gradient to contribute (its .grad() is
  // left undefined: the optimizer skips a parameter no rank produced a gradient for).
  void zero_slot(size_t member);

 private:
  std::vector<size_t> parameter_indices_;
  Tensor buffer_;
  std::vector<Tensor> slots_;
};

}  // namespace dtrain::dist
