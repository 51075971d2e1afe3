#pragma once
// MaxPool2d: the largest value of each window.
#include <cstdint>

#include "layers/module.h"

namespace dtrain {

// x [N, C, H, W] -> [N, C, OH, OW]; padding counts as -inf (never the maximum). The gradient
// goes to the position that held the maximum.
Tensor max_pool2d(const Tensor& x, int64_t kernel_size, int64_t stride, int64_t padding = 0);

class MaxPool2d : public Module {
 public:
  // stride 0 means stride = kernel_size (PyTorch's default).
  explicit MaxPool2d(int64_t kernel_size, int64_t stride = 0, int64_t padding = 0);
  ModuleSettings describe() const override {
    return {{"kernel_size", setting_text(kernel_size_)}, {"stride", setting_text(stride_)},
            {"padding", setting_text(padding_)}};
  }

 protected:
  Tensor forward(const Tensor& x) override;

 private:
  int64_t kernel_size_;
  int64_t stride_;
  int64_t padding_;
};

}  // namespace dtrain
