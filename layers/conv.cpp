#include "layers/conv.h"

#include <cstddef>
#include <vector>

#include "core/backend.h"
#include "core/graph.h"
#include "core/ops/elementwise.h"
#include "core/ops/factory.h"
#include "core/ops/join.h"
#include "core/ops/matmul.h"
#include "core/ops/view.h"
#include "layers/init.h"

namespace dtrain {

namespace {

// x [N, C, H, W] with padding rows and columns of value on each side.
Tensor pad2d(const Tensor& x, int64_t padding, double value) {
  if (padding == 0) return x;
  const TensorOptions options{.dtype = x.dtype(), .device = x.device()};
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  Tensor rows = full({n, c, padding, w}, value, options);
  Tensor tall = cat({rows, x, rows}, 2);
  Tensor columns = full({n, c, h + 2 * padding, padding}, value, options);
  return cat({columns, tall, columns}, 3);
}

}  // namespace

int64_t Window2d::output_size(int64_t input_size, const char* op) const {
  if (kernel <= 0 || stride <= 0 || padding < 0 || dilation <= 0) {
    fail(op, ": expected kernel, stride and dilation positive and padding non-negative, got kernel ", kernel, ", stride ",
         stride, ", padding ", padding, ", dilation ", dilation);
  }
  const int64_t span = dilation * (kernel - 1) + 1;
  const int64_t padded = input_size + 2 * padding;
  if (padded < span) {
    fail(op, ": a window spanning ", span, " does not fit an input of size ", input_size, " padded by ", padding);
  }
  return (padded - span) / stride + 1;
}

Tensor sliding_windows(const Tensor& x, const Window2d& window, double pad_value) {
  check_defined(x, "sliding_windows", "x");
  if (x.dim() != 4) fail("sliding_windows: expected input [N, C, H, W], got ", x.shape());
  const int64_t out_h = window.output_size(x.size(2), "sliding_windows");
  const int64_t out_w = window.output_size(x.size(3), "sliding_windows");
  Tensor padded = pad2d(x, window.padding, pad_value);
  // One strided slice per kernel offset: its [OH, OW] grid is that offset's value in every window.
  std::vector<Tensor> offsets;
  offsets.reserve(static_cast<size_t>(window.kernel * window.kernel));
  for (int64_t ki = 0; ki < window.kernel; ++ki) {
    const int64_t top = ki * window.dilation;
    Tensor band = slice(padded, 2, top, top + (out_h - 1) * window.stride + 1, window.stride);
    for (int64_t kj = 0; kj < window.kernel; ++kj) {
      const int64_t left = kj * window.dilation;
      offsets.push_back(slice(band, 3, left, left + (out_w - 1) * window.stride + 1, window.stride));
    }
  }
  return stack(offsets, 2);
}

Tensor im2col(const Tensor& x, const Window2d& window) {
  Tensor windows = sliding_windows(x, window);  // [N, C, k*k, OH, OW], contiguous
  const int64_t n = windows.size(0), c = windows.size(1), k2 = windows.size(2);
  return windows.view({n, c * k2, windows.size(3) * windows.size(4)});
}

namespace {

// The device's own convolution kernel (cuDNN on CUDA) as one autograd node, or an undefined tensor
// when the device's kernel declines the case (Backend::supports; the CPU always does: its kernel
// is the im2col path below).
Tensor device_convolution(const Tensor& x_in, const Tensor& weight_in, const Window2d& window, int64_t out_h,
                          int64_t out_w) {
  const Convolution2d geometry{.stride = window.stride, .padding = window.padding, .dilation = window.dilation};
  Backend& kernels = backend_for(x_in.device());
  const Tensor x = contiguous(x_in), weight = contiguous(weight_in);  // free when they already are
  if (!kernels.supports({.kernel = FusedKernel::Convolution2d, .tensors = {x, weight}, .geometry = geometry})
           .supported) {
    return Tensor();
  }
  Tensor out = empty({x.size(0), weight.size(0), out_h, out_w}, {.dtype = x.dtype(), .device = x.device()});
  kernels.convolution2d(x, weight, geometry, out);
  if (any_requires_grad({&x, &weight})) {
    const bool need_x = x.requires_grad(), need_weight = weight.requires_grad();
    SavedTensor saved_x(x), saved_weight(weight);
    record("conv2d", {x, weight}, {out}, [=](const GradientList& g) {
      const Tensor grad_out = contiguous(g[0]);
      const Tensor input = saved_x.unpack("conv2d"), filter = saved_weight.unpack("conv2d");
      const TensorOptions like{.dtype = input.dtype(), .device = input.device()};
      Tensor grad_x = need_x ? empty(input.shape(), like) : Tensor();
      Tensor grad_weight = need_weight ? empty(filter.shape(), like) : Tensor();
      // The query that took the forward covered this backward too.
      backend_for(input.device()).convolution2d_backward(grad_out, input, filter, geometry, grad_x, grad_weight);
      return GradientList{grad_x, grad_weight};
    });
  }
  return out;
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride, int64_t padding,
              int64_t dilation) {
  check_defined(x, "conv2d", "x");
  check_defined(weight, "conv2d", "weight");
  if (weight.dim() != 4 || weight.size(2) != weight.size(3)) {
    fail("conv2d: expected a square-kernel weight [out, in, k, k], got ", weight.shape());
  }
  if (x.dim() != 4 || x.size(1) != weight.size(1)) {
    fail("conv2d: expected input [N, ", weight.size(1), ", H, W] for weight of shape ", weight.shape(),
         ", got input of shape ", x.shape());
  }
  const int64_t out_channels = weight.size(0);
  if (bias.defined() && bias.shape() != Shape{out_channels}) {
    fail("conv2d: expected bias of shape [", out_channels, "], got ", bias.shape());
  }
  const Window2d window{.kernel = weight.size(2), .stride = stride, .padding = padding, .dilation = dilation};
  const int64_t out_h = window.output_size(x.size(2), "conv2d");
  const int64_t out_w = window.output_size(x.size(3), "conv2d");
  if (Tensor out = device_convolution(x, weight, window, out_h, out_w); out.defined()) {
    return bias.defined() ? add(out, bias.view({out_channels, 1, 1})) : out;
  }
  Tensor columns = im2col(x, window);  // [N, in*k*k, OH*OW]
  // [out, in*k*k] @ [N, in*k*k, OH*OW] -> [N, out, OH*OW], the weight broadcast over the batch.
  Tensor out = matmul(weight.reshape({out_channels, -1}), columns);
  if (bias.defined()) out = add(out, bias.view({out_channels, 1}));
  return out.view({x.size(0), out_channels, out_h, out_w});
}

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, Conv2dOptions options)
    : Module("Conv2d"), options_(options) {
  if (in_channels <= 0 || out_channels <= 0 || kernel_size <= 0) {
    fail("Conv2d: expected positive sizes, got in_channels ", in_channels, ", out_channels ", out_channels,
         ", kernel_size ", kernel_size);
  }
  const double bound = default_init_bound(in_channels * kernel_size * kernel_size);
  weight_ = register_parameter("weight", uniform_parameter({out_channels, in_channels, kernel_size, kernel_size}, bound));
  if (options.bias) bias_ = register_parameter("bias", uniform_parameter({out_channels}, bound));
}

Tensor Conv2d::forward(const Tensor& x) {
  return conv2d(x, weight_, bias_, options_.stride, options_.padding, options_.dilation);
}

}  // namespace dtrain
