#include "layers/feed_forward.h"

#include <cstdint>
#include <initializer_list>

#include "core/backend.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/graph.h"
#include "core/ops/factory.h"
#include "core/ops/view.h"

namespace dtrain {
namespace {

constexpr const char* kOp = "feed_forward_gelu";

void check_weight_and_bias(const Tensor& weight, const Tensor& bias, int64_t in, const char* name) {
  check_defined(weight, kOp, name);
  if (weight.dim() != 2 || weight.size(1) != in) {
    fail(kOp, ": expected ", name, " of shape [*, ", in, "], got ", weight.shape());
  }
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != weight.size(0))) {
    fail(kOp, ": expected the bias of ", name, " of shape [", weight.size(0), "], got ", bias.shape());
  }
}

void check_arguments(const Tensor& input, const Tensor& fc_weight, const Tensor& fc_bias, const Tensor& proj_weight,
                     const Tensor& proj_bias) {
  check_defined(input, kOp, "input");
  if (input.dim() == 0) fail(kOp, ": expected input [..., in], got a 0-d tensor");
  check_weight_and_bias(fc_weight, fc_bias, input.size(-1), "fc_weight");
  check_weight_and_bias(proj_weight, proj_bias, fc_weight.size(0), "proj_weight");
  if (!is_floating(input.dtype())) fail(kOp, ": expected a floating input, got ", input.dtype());
  for (const Tensor* weight : {&fc_weight, &proj_weight}) {
    if (weight->dtype() != input.dtype()) {
      fail(kOp, ": expected weights of the input's dtype ", input.dtype(), ", got ", weight->dtype());
    }
  }
  for (const Tensor* tensor : {&fc_weight, &fc_bias, &proj_weight, &proj_bias}) {
    if (tensor->defined() && tensor->device() != input.device()) {
      fail(kOp, ": expected input, weights and biases on one device (", input.device(), "), got one on ",
           tensor->device());
    }
  }
}

// A bias of another dtype is converted, as linear does; its gradient flows back through the conversion.
Tensor in_dtype(const Tensor& bias, DType dtype) { return bias.defined() && bias.dtype() != dtype ? bias.to(dtype) : bias; }

}  // namespace

Tensor feed_forward_gelu(const Tensor& input, const Tensor& fc_weight, const Tensor& fc_bias_in,
                         const Tensor& proj_weight, const Tensor& proj_bias_in) {
  check_arguments(input, fc_weight, fc_bias_in, proj_weight, proj_bias_in);
  const Tensor fc_bias = in_dtype(fc_bias_in, input.dtype());
  const Tensor proj_bias = in_dtype(proj_bias_in, input.dtype());
  const int64_t hidden = fc_weight.size(0), out_features = proj_weight.size(0);
  Shape output_shape = input.shape();
  output_shape.back() = out_features;
  const Tensor rows = reshape(input, {-1, input.size(-1)});
  const TensorOptions like_input{.dtype = input.dtype(), .device = input.device()};
  Tensor pre_activation = empty({rows.size(0), hidden}, like_input);
  Tensor activation = empty({rows.size(0), hidden}, like_input);
  Tensor output = empty({rows.size(0), out_features}, like_input);
  Backend& kernels = backend_for(input.device());
  {
    NoGradGuard no_grad;  // recorded below as one node, with the backward written out
    Tensor none;
    kernels.linear(rows, fc_weight, fc_bias, LinearActivation::GeluTanh, activation, pre_activation);
    kernels.linear(activation, proj_weight, proj_bias, LinearActivation::None, output, none);
  }
  if (any_requires_grad({&rows, &fc_weight, &fc_bias, &proj_weight, &proj_bias})) {
    const bool need_input = rows.requires_grad(), need_fc_weight = fc_weight.requires_grad();
    const bool need_fc_bias = fc_bias.defined() && fc_bias.requires_grad();
    const bool need_proj_weight = proj_weight.requires_grad();
    const bool need_proj_bias = proj_bias.defined() && proj_bias.requires_grad();
    const bool need_hidden = need_input || need_fc_weight || need_fc_bias;  // the gradient at fc's output
    // What the two linear nodes would save: fc's input and weight, the pre-activation, proj's input
    // (the GELU's output) and weight — each only where a gradient needs it.
    SavedTensor saved_rows(need_fc_weight ? rows : Tensor()), saved_fc_weight(need_input ? fc_weight : Tensor());
    SavedTensor saved_pre_activation(need_hidden ? pre_activation : Tensor());
    SavedTensor saved_activation(need_proj_weight ? activation : Tensor());
    SavedTensor saved_proj_weight(need_hidden ? proj_weight : Tensor());
    record(kOp, {rows, fc_weight, fc_bias, proj_weight, proj_bias}, {output}, [=](const GradientList& g) {
      const Tensor grad_output = g[0].contiguous();
      const TensorOptions like{.dtype = grad_output.dtype(), .device = grad_output.device()};
      const int64_t row_count = grad_output.size(0);
      Backend& table = backend_for(grad_output.device());
      NoGradGuard no_grad;
      Tensor none;
      // proj: weight and bias gradients (BGRADB on CUDA); its input gradient comes next, through the GELU.
      Tensor grad_proj_weight = need_proj_weight ? empty({out_features, hidden}, like) : Tensor();
      Tensor grad_proj_bias = need_proj_bias ? empty({out_features}, like) : Tensor();
      if (need_proj_weight || need_proj_bias) {
        const Tensor proj_input = need_proj_weight ? saved_activation.unpack(kOp) : Tensor();
        table.linear_backward(grad_output, proj_input, Tensor(), none, LinearActivation::None, none, grad_proj_weight,
                              grad_proj_bias);
      }
      Tensor grad_rows, grad_fc_weight, grad_fc_bias;
      if (need_hidden) {
        // fc's output gradient through GELU's derivative, and fc's bias gradient (DGELU_BGRAD on CUDA).
        Tensor grad_pre = empty({row_count, hidden}, like);
        grad_fc_bias = need_fc_bias ? empty({hidden}, like) : Tensor();
        table.linear_input_gradient(grad_output, saved_proj_weight.unpack(kOp), saved_pre_activation.unpack(kOp),
                                    LinearActivation::GeluTanh, grad_pre, grad_fc_bias);
        // fc: input and weight gradients (two GEMMs; its bias gradient is done).
        const Tensor fc_input = need_fc_weight ? saved_rows.unpack(kOp) : Tensor();
        const Tensor fc_w = need_input ? saved_fc_weight.unpack(kOp) : Tensor();
        grad_rows = need_input ? empty({row_count, fc_w.size(1)}, like) : Tensor();
        grad_fc_weight = need_fc_weight ? empty({hidden, fc_input.size(1)}, like) : Tensor();
        if (need_input || need_fc_weight) {
          table.linear_backward(grad_pre, fc_input, fc_w, none, LinearActivation::None, grad_rows, grad_fc_weight, none);
        }
      }
      return GradientList{grad_rows, grad_fc_weight, grad_fc_bias, grad_proj_weight, grad_proj_bias};
    });
  }
  return output.view(output_shape);
}

}  // namespace dtrain
