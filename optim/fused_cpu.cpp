#include "optim/fused_cpu.h"

namespace dtrain::optim {

bool fusable_on_cpu(std::initializer_list<Tensor> tensors) {
  const Tensor* first = nullptr;
  for (const Tensor& tensor : tensors) {
    if (!tensor.defined()) continue;
    if (!tensor.device().is_cpu() || !tensor.is_contiguous() || !tensor.storage()->is_resident()) return false;
    if (tensor.dtype() != kFloat32 && tensor.dtype() != kFloat64) return false;
    if (first == nullptr) {
      first = &tensor;
    } else if (tensor.dtype() != first->dtype() || tensor.numel() != first->numel()) {
      return false;
    }
  }
  return first != nullptr;
}

}  // namespace dtrain::optim
