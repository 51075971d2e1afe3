#include "dist/model_averaging/parameter_buckets.h"

#include <cstdint>
#include <utility>

#include "core/allocator.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/ops/factory.h"
#include "dist/bucket_assignment.h"

namespace dtrain::dist {

ParameterBuckets::ParameterBuckets(std::vector<Tensor> parameters, size_t bucket_cap_bytes, const char* who)
    : parameters_(std::move(parameters)) {
  std::vector<BucketableTensor> sizes;
  for (size_t index = 0; index < parameters_.size(); ++index) {
    const Tensor& parameter = parameters_[index];
    if (!parameter.defined()) fail(who, ": expected defined parameters, got an undefined one at index ", index);
    sizes.push_back({.nbytes = parameter.nbytes(), .dtype = parameter.dtype(), .device = parameter.device()});
  }
  MemoryTagScope communication(MemoryTag::Communication);
  for (const std::vector<size_t>& members : assign_gradient_buckets(sizes, bucket_cap_bytes, bucket_cap_bytes)) {
    int64_t elements = 0;
    for (size_t member : members) elements += parameters_[member].numel();
    const Tensor& first = parameters_[members.front()];
    Tensor buffer = empty({elements}, {.dtype = first.dtype(), .device = first.device()});
    int64_t offset = 0;
    for (size_t member : members) {
      const Tensor& parameter = parameters_[member];
      slots_.push_back({member, buffers_.size(), buffer.narrow(0, offset, parameter.numel()).view(parameter.shape())});
      offset += parameter.numel();
    }
    buffers_.push_back(std::move(buffer));
  }
}

int64_t ParameterBuckets::element_count() const {
  int64_t elements = 0;
  for (const Tensor& buffer : buffers_) elements += buffer.numel();
  return elements;
}

void ParameterBuckets::pack() {
  NoGradGuard no_grad;
  for (Slot& slot : slots_) slot.view.copy_(parameters_[slot.parameter]);
}

void ParameterBuckets::unpack() {
  NoGradGuard no_grad;
  for (Slot& slot : slots_) parameters_[slot.parameter].copy_(slot.view);
}

}  // namespace dtrain::dist
