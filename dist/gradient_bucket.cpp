#include "dist/gradient_bucket.h"

#include <cstdint>
#include <utility>

#include "core/allocator.h"
#include "core/grad_mode.h"
#include "core/ops/factory.h"

namespace dtrain::dist {

GradientBucket::GradientBucket(std::vector<size_t> parameter_indices, const std::vector<Tensor>& parameters)
    : parameter_indices_(std::move(parameter_indices)) {
  if (parameter_indices_.empty()) fail("GradientBucket: expected at least one parameter, got none");
  const Tensor& first = parameters.at(parameter_indices_.front());
  int64_t total = 0;
  for (size_t index : parameter_indices_) {
    const Tensor& parameter = parameters.at(index);
    if (parameter.dtype() != first.dtype() || parameter.device() != first.device()) {
      fail("GradientBucket: expected every parameter of a bucket on ", first.device(), " in ", first.dtype(),
           ", got one on ", parameter.device(), " in ", parameter.dtype());
    }
    total += parameter.numel();
  }
  {
    MemoryTagScope tag(MemoryTag::Gradients);
    buffer_ = zeros({total}, {.dtype = first.dtype(), .device = first.device()});
  }
  int64_t offset = 0;
  slots_.reserve(parameter_indices_.size());
  for (size_t index : parameter_indices_) {
    const Tensor& parameter = parameters[index];
    slots_.push_back(buffer_.narrow(0, offset, parameter.numel()).view(parameter.shape()));
    offset += parameter.numel();
  }
}

bool GradientBucket::is_slot(size_t member, const Tensor& gradient) const {
  const Tensor& view = slots_.at(member);
  return gradient.defined() && gradient.storage() == view.storage() &&
         gradient.storage_offset() == view.storage_offset() && gradient.shape() == view.shape() &&
         gradient.strides() == view.strides();
}

void GradientBucket::adopt_gradient(size_t member, Tensor parameter) {
  Tensor gradient = parameter.grad();
  if (!gradient.defined()) fail("GradientBucket::adopt_gradient: the parameter has no gradient to adopt");
  if (is_slot(member, gradient)) return;
  NoGradGuard no_grad;
  Tensor view = slots_[member];
  view.copy_(gradient);
  parameter.set_grad(view);
}

void GradientBucket::zero_slot(size_t member) {
  NoGradGuard no_grad;
  Tensor view = slots_.at(member);
  view.zero_();
}

}  // namespace dtrain::dist
