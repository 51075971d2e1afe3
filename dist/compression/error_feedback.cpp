#include "dist/compression/error_feedback.h"

#include <cstdlib>
#include <utility>

#include "core/allocator.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/ops/factory.h"

namespace dtrain::dist {
namespace {

constexpr const char* kPrefix = "residual.";

}  // namespace

void ErrorFeedback::compensate(size_t bucket_index, Tensor& input) {
  NoGradGuard no_grad;
  auto found = residuals_.find(bucket_index);
  if (found == residuals_.end()) {
    MemoryTagScope tag(MemoryTag::Communication);
    residuals_.emplace(bucket_index, zeros({input.numel()}, {.dtype = input.dtype(), .device = input.device()}));
    return;  // adding zeros changes nothing
  }
  Tensor& residual = found->second;
  if (residual.numel() != input.numel()) {
    fail("error feedback: the residual of bucket ", bucket_index, " holds ", residual.numel(),
         " elements but the bucket ", input.numel(),
         " (a state loaded from another model or another bucket layout)");
  }
  if (residual.dtype() != input.dtype() || residual.device() != input.device()) {
    residual = residual.to(input.device()).to(input.dtype()).contiguous();
  }
  input.add_(residual.view(input.shape()));
}

Tensor ErrorFeedback::residual(size_t bucket_index) const {
  auto found = residuals_.find(bucket_index);
  if (found == residuals_.end()) fail("error feedback: bucket ", bucket_index, " has no residual yet");
  return found->second;
}

void ErrorFeedback::save(StateDict& state) const {
  for (const auto& [bucket, residual] : residuals_) state.insert(kPrefix + std::to_string(bucket), residual.clone());
}

std::map<size_t, Tensor> ErrorFeedback::read(const optim::StateDict& state, optim::StateDictProblems& problems) const {
  std::map<size_t, Tensor> residuals;
  for (const auto& [key, tensor] : state) {
    if (key.rfind(kPrefix, 0) != 0) continue;
    std::string number = key.substr(std::string(kPrefix).size());
    char* end = nullptr;
    unsigned long long bucket = std::strtoull(number.c_str(), &end, 10);
    if (number.empty() || end != number.c_str() + number.size()) {
      problems.add(detail::concat("key '", key, "': expected 'residual.' followed by a bucket index"));
      continue;
    }
    if (!tensor.defined() || tensor.dim() != 1 || !is_floating(tensor.dtype())) {
      problems.add(detail::concat("key '", key, "': expected a flat floating-point tensor, got ",
                                  tensor.defined() ? detail::concat(tensor.dtype(), " of shape ", tensor.shape())
                                                   : std::string("an undefined tensor")));
      continue;
    }
    residuals.emplace(static_cast<size_t>(bucket), tensor.clone());
  }
  return residuals;
}

}  // namespace dtrain::dist
