#include "layers/layer_norm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/backend.h"
#include "core/graph.h"
#include "core/ops/elementwise.h"
#include "core/ops/factory.h"
#include "core/ops/reduce.h"
#include "core/ops/unary.h"
#include "core/ops/view.h"
#include "core/profiler_recorder.h"
#include "layers/init.h"

namespace dtrain {

namespace {

// layer_norm (residual undefined) or add_layer_norm (sum = x + residual, then its layer_norm)
// through the kernel table, one autograd node either way; nothing (an undefined normalized) when
// the device's fused kernel declines the case (Backend::supports), so that the caller composes it.
AddedAndNormalized fused_layer_norm(const Tensor& x, const Tensor& residual_in, const Tensor& weight_in,
                                    const Tensor& bias_in, int64_t size, double eps) {
  const char* op = residual_in.defined() ? "add_layer_norm" : "layer_norm";
  profiler::detail::Scope profiled(profiler::EventKind::Op, op, {&x, &residual_in, &weight_in, &bias_in}, op);
  const Tensor input = contiguous(x);  // a copy it makes is counted against this op
  const Tensor residual = residual_in.defined() ? contiguous(residual_in) : Tensor();
  const Tensor weight = weight_in.defined() ? contiguous(weight_in) : Tensor();
  const Tensor bias = bias_in.defined() ? contiguous(bias_in) : Tensor();
  const KernelCase query = residual.defined()
                               ? KernelCase{.kernel = FusedKernel::AddLayerNorm, .tensors = {input, residual, weight, bias}}
                               : KernelCase{.kernel = FusedKernel::LayerNorm, .tensors = {input, weight, bias}};
  if (!backend_for(input.device()).supports(query).supported) {
    profiled.cancel();  // the composed ops are recorded instead
    return {};
  }
  const int64_t rows = size == 0 ? 0 : input.numel() / size;
  const TensorOptions like_input{.dtype = input.dtype(), .device = input.device()};
  const TensorOptions statistics{.dtype = statistics_dtype(input.dtype()), .device = input.device()};
  Tensor out = empty(input.shape(), like_input);
  Tensor mean = empty({rows}, statistics);
  Tensor rstd = empty({rows}, statistics);
  Tensor sum;  // the normalised rows: x itself, or x + residual
  if (residual.defined()) {
    sum = empty(input.shape(), like_input);
    backend_for(input.device()).add_layer_norm(input, residual, weight, bias, eps, sum, out, mean, rstd);
  } else {
    backend_for(input.device()).layer_norm(input, weight, bias, eps, out, mean, rstd);
  }

  if (any_requires_grad({&input, &residual, &weight, &bias})) {
    const bool with_residual = residual.defined();
    const bool need_x = input.requires_grad() || (with_residual && residual.requires_grad());
    const bool need_weight = weight.defined() && weight.requires_grad();
    const bool need_bias = bias.defined() && bias.requires_grad();
    SavedTensor saved_rows(with_residual ? sum : input), saved_weight(weight), saved_mean(mean), saved_rstd(rstd);
    auto backward = [=](const Tensor& grad_out_in, const Tensor& grad_sum_in) {
      const Tensor rows_normalised = saved_rows.unpack("layer_norm");
      auto same_layout = [&](const Tensor& g) {
        return contiguous(g.dtype() == rows_normalised.dtype() ? g : g.to(rows_normalised.dtype()));
      };
      // The engine hands zeros for an output that got no gradient, so both are defined when the
      // sum exists (grad_sum_in is undefined only for plain layer_norm).
      const Tensor grad_sum = grad_sum_in.defined() ? same_layout(grad_sum_in) : Tensor();
      const Tensor saved_w = saved_weight.unpack("layer_norm");
      const TensorOptions like{.dtype = rows_normalised.dtype(), .device = rows_normalised.device()};
      Tensor grad_x = need_x ? empty(rows_normalised.shape(), like) : Tensor();
      Tensor grad_weight = need_weight ? empty(saved_w.shape(), like) : Tensor();
      Tensor grad_bias = need_bias ? empty(saved_w.defined() ? saved_w.shape() : Shape{size}, like) : Tensor();
      backend_for(rows_normalised.device())
          .layer_norm_backward(same_layout(grad_out_in), rows_normalised, saved_w, saved_mean.unpack("layer_norm"),
                               saved_rstd.unpack("layer_norm"), need_x ? grad_sum : Tensor(), grad_x, grad_weight,
                               grad_bias);
      return GradientList{grad_x, grad_weight, grad_bias};
    };
    if (with_residual) {
      // x and residual receive the same gradient: d(sum)/dx = d(sum)/d(residual) = 1.
      record("add_layer_norm", {input, residual, weight, bias}, {sum, out}, [backward](const GradientList& g) {
        GradientList grads = backward(g[1], g[0]);
        return GradientList{grads[0], grads[0], grads[1], grads[2]};
      });
    } else {
      record("layer_norm", {input, weight, bias}, {out},
             [backward](const GradientList& g) { return backward(g[0], Tensor()); });
    }
  }
  return {sum, out};
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
  Tensor fused = fused_layer_norm(x, Tensor(), weight, bias, normalized_shape.numel(), eps).normalized;
  return fused.defined() ? fused : detail::layer_norm_composed(x, normalized_shape, weight, bias, eps);
}

AddedAndNormalized add_layer_norm(const Tensor& x, const Tensor& residual, const Shape& normalized_shape,
                                  const Tensor& weight, const Tensor& bias, double eps) {
  check_arguments(x, normalized_shape, weight, bias);
  check_defined(residual, "add_layer_norm", "residual");
  if (residual.shape() != x.shape() || residual.dtype() != x.dtype() || residual.device() != x.device()) {
    fail("add_layer_norm: expected residual of x's shape, dtype and device (", x.shape(), ", ", x.dtype(), ", ",
         x.device(), "), got ", residual.shape(), ", ", residual.dtype(), ", ", residual.device());
  }
  AddedAndNormalized fused = fused_layer_norm(x, residual, weight, bias, normalized_shape.numel(), eps);
  if (fused.normalized.defined()) return fused;
  Tensor sum = add(x, residual);
  return {sum, detail::layer_norm_composed(sum, normalized_shape, weight, bias, eps)};
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

AddedAndNormalized LayerNorm::add_and_normalize(const Tensor& x, const Tensor& residual) {
  Tensor sum;
  Tensor normalized = call_with_hooks(x, [&] {
    AddedAndNormalized result = add_layer_norm(x, residual, normalized_shape_, weight_, bias_, eps_);
    sum = result.sum;
    return result.normalized;
  });
  return {sum, normalized};
}

}  // namespace dtrain
