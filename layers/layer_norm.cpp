#include "layers/layer_norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/backend.h"
#include "core/graph.h"
#include "core/ops/elementwise.h"
#include "core/ops/factory.h"
#include "core/ops/reduce.h"
#include "core/ops/unary.h"
#include "core/ops/view.h"
#include "layers/init.h"

namespace dtrain {

namespace {

// The fused kernels (Backend::layer_norm) run float32 and float64 on the CPU and every floating
// dtype on CUDA; anything else takes the composed tensor ops.
bool fused_path_applies(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const bool supported = x.device().is_cpu() ? (x.dtype() == kFloat32 || x.dtype() == kFloat64)
                                             : (x.device().is_cuda() && is_floating(x.dtype()));
  if (!supported) return false;
  for (const Tensor* affine : {&weight, &bias}) {
    if (affine->defined() && (affine->device() != x.device() || affine->dtype() != x.dtype())) return false;
  }
  return true;
}

Tensor fused_layer_norm(const Tensor& x, const Tensor& weight_in, const Tensor& bias_in, int64_t size, double eps) {
  const Tensor input = contiguous(x);
  const Tensor weight = weight_in.defined() ? contiguous(weight_in) : Tensor();
  const Tensor bias = bias_in.defined() ? contiguous(bias_in) : Tensor();
  const int64_t rows = size == 0 ? 0 : input.numel() / size;
  const TensorOptions statistics{.dtype = statistics_dtype(input.dtype()), .device = input.device()};
  Tensor out = empty(input.shape(), {.dtype = input.dtype(), .device = input.device()});
  Tensor mean = empty({rows}, statistics);
  Tensor rstd = empty({rows}, statistics);
  backend_for(input.device()).layer_norm(input, weight, bias, eps, out, mean, rstd);

  if (any_requires_grad({&input, &weight, &bias})) {
    const bool need_x = input.requires_grad();
    const bool need_weight = weight.defined() && weight.requires_grad();
    const bool need_bias = bias.defined() && bias.requires_grad();
    SavedTensor saved_x(input), saved_weight(weight), saved_mean(mean), saved_rstd(rstd);
    record("layer_norm", {input, weight, bias}, {out},
           [=](const GradientList& g) {
             const Tensor grad_out = contiguous(g[0]);
             const Tensor saved_input = saved_x.unpack("layer_norm");
             const Tensor saved_w = saved_weight.unpack("layer_norm");
             const TensorOptions like_input{.dtype = saved_input.dtype(), .device = saved_input.device()};
             Tensor grad_x = need_x ? empty(saved_input.shape(), like_input) : Tensor();
             Tensor grad_weight = need_weight ? empty(saved_w.shape(), like_input) : Tensor();
             Tensor grad_bias = need_bias ? empty(saved_w.defined() ? saved_w.shape() : Shape{size}, like_input) : Tensor();
             backend_for(saved_input.device())
                 .layer_norm_backward(grad_out, saved_input, saved_w, saved_mean.unpack("layer_norm"),
                                      saved_rstd.unpack("layer_norm"), grad_x, grad_weight, grad_bias);
             return GradientList{grad_x, grad_weight, grad_bias};
           });
  }
  return out;
}

void check_arguments(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias) {
  check_defined(x, "layer_norm", "x");
  const int64_t k = static_cast<int64_t>(normalized_shape.size());
  bool fits = k >= 1 && x.dim() >= k && std::equal(normalized_shape.begin(), normalized_shape.end(), x.shape().end() - k);
  if (!fits) {
    fail("layer_norm: expected input whose trailing dims are ", normalized_shape, ", got input of shape ", x.shape());
  }
  if (weight.defined() && weight.shape() != normalized_shape) {
    fail("layer_norm: expected weight of shape ", normalized_shape, ", got ", weight.shape());
  }
  if (bias.defined() && bias.shape() != normalized_shape) {
    fail("layer_norm: expected bias of shape ", normalized_shape, ", got ", bias.shape());
  }
}

}  // namespace

namespace detail {
Tensor layer_norm_composed(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                           double eps) {
  check_arguments(x, normalized_shape, weight, bias);
  std::vector<int64_t> dims;
  for (int64_t d = x.dim() - static_cast<int64_t>(normalized_shape.size()); d < x.dim(); ++d) dims.push_back(d);
  Tensor centered = sub(x, mean(x, dims, /*keepdim=*/true));
  Tensor variance = mean(square(centered), dims, /*keepdim=*/true);
  Tensor out = mul(centered, rsqrt(add(variance, eps)));
  if (weight.defined()) out = mul(out, weight);
  if (bias.defined()) out = add(out, bias);
  return out;
}
}  // namespace detail

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias, double eps) {
  check_arguments(x, normalized_shape, weight, bias);
  if (!fused_path_applies(x, weight, bias)) return detail::layer_norm_composed(x, normalized_shape, weight, bias, eps);
  return fused_layer_norm(x, weight, bias, normalized_shape.numel(), eps);
}

LayerNorm::LayerNorm(Shape normalized_shape, double eps, bool elementwise_affine)
    : Module("LayerNorm"), normalized_shape_(std::move(normalized_shape)), eps_(eps) {
  if (normalized_shape_.empty() || normalized_shape_.numel() <= 0) {
    fail("LayerNorm: expected a non-empty normalized_shape of positive sizes, got ", normalized_shape_);
  }
  if (elementwise_affine) {
    weight_ = register_parameter("weight", constant_parameter(normalized_shape_, 1.0));
    bias_ = register_parameter("bias", constant_parameter(normalized_shape_, 0.0));
  }
}

Tensor LayerNorm::forward(const Tensor& x) { return layer_norm(x, normalized_shape_, weight_, bias_, eps_); }

}  // namespace dtrain
