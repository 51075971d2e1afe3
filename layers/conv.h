#pragma once
// 2-d convolution by im2col: the input's sliding windows become the columns of a matrix, and
// the convolution is one (batched) matrix multiply with the weight viewed as [out, in * kh * kw].
#include <cstdint>

#include "layers/module.h"

namespace dtrain {

// Where the windows of a 2-d sliding-window op sit (square: the same on both axes).
struct Window2d {
  int64_t kernel = 1;
  int64_t stride = 1;
  int64_t padding = 0;  // on each side of both spatial dims
  int64_t dilation = 1;
  // The number of window positions along an axis of the given size; raises if none fit.
  int64_t output_size(int64_t input_size, const char* op) const;
};

// x [N, C, H, W] -> [N, C, kernel * kernel, OH, OW]: every window's values, the border padded
// with pad_value. Built from strided slices, so it is differentiable (the backward adds each
// window's gradient back where it came from, as col2im does) on any device.
Tensor sliding_windows(const Tensor& x, const Window2d& window, double pad_value = 0.0);
// x [N, C, H, W] -> [N, C * kernel * kernel, OH * OW], rows in the (c, ki, kj) order of a conv
// weight [out, C, kernel, kernel] (as torch.nn.functional.unfold).
Tensor im2col(const Tensor& x, const Window2d& window);

// x [N, C, H, W], weight [out, C, k, k], bias [out] or undefined -> [N, out, OH, OW].
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride = 1, int64_t padding = 0,
              int64_t dilation = 1);

struct Conv2dOptions {
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t dilation = 1;
  bool bias = true;
};

class Conv2d : public Module {
 public:
  // Weight and bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in * k * k, as PyTorch.
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, Conv2dOptions options = {});

  const Tensor& weight() const { return weight_; }  // [out, in, k, k]
  const Tensor& bias() const { return bias_; }      // [out] or undefined
  const Conv2dOptions& options() const { return options_; }
  ModuleSettings describe() const override {
    return {{"stride", setting_text(options_.stride)}, {"padding", setting_text(options_.padding)},
            {"dilation", setting_text(options_.dilation)}};
  }

 protected:
  // x [N, in, H, W] -> [N, out, OH, OW]
  Tensor forward(const Tensor& x) override;

 private:
  Conv2dOptions options_;
  Tensor weight_;
  Tensor bias_;
};

}  // namespace dtrain
