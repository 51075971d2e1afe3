#include "layers/linear.h"

#include <string>

#include "core/backend.h"
#include "core/grad_mode.h"
#include "core/graph.h"
#include "core/ops/elementwise.h"
#include "core/ops/factory.h"
#include "core/ops/matmul.h"
#include "core/ops/reduce.h"
#include "core/ops/view.h"
#include "layers/init.h"

namespace dtrain {

namespace {

void check_linear_arguments(const Tensor& input, const Tensor& weight, const Tensor& bias, const char* op) {
  check_defined(input, op, "input");
  check_defined(weight, op, "weight");
  if (weight.dim() != 2) fail(op, ": expected a 2-d weight [out, in], got shape ", weight.shape());
  if (input.dim() == 0 || input.size(-1) != weight.size(1)) {
    fail(op, ": expected input [..., ", weight.size(1), "] for weight of shape ", weight.shape(), ", got input of shape ",
         input.shape());
  }
  if (input.dtype() != weight.dtype()) {
    fail(op, ": expected input of the weight's dtype ", weight.dtype(), ", got ", input.dtype(),
         " (convert the input, or the module with .to(dtype))");
  }
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != weight.size(0))) {
    fail(op, ": expected bias of shape [", weight.size(0), "], got ", bias.shape());
  }
  if (input.device() != weight.device() || (bias.defined() && bias.device() != weight.device())) {
    fail(op, ": expected input, weight and bias on one device, got ", input.device(), ", ", weight.device(),
         bias.defined() ? " and " : "", bias.defined() ? bias.device() : weight.device());
  }
}

// The product of Backend::linear as one autograd node. With an activation, its backward first
// takes the activation's gradient at the saved pre-activation value.
Tensor linear_node(const Tensor& input, const Tensor& weight, const Tensor& bias_in, LinearActivation activation,
                   const char* op) {
  // A bias of another dtype is converted (as adding it in place always did); its gradient flows back.
  const Tensor bias = bias_in.defined() && bias_in.dtype() != input.dtype() ? bias_in.to(input.dtype()) : bias_in;
  // Leading dims fold into rows: [rows, in] @ W^T is one GEMM (W^T is a strided view, no copy).
  Shape output_shape = input.shape();
  output_shape.back() = weight.size(0);
  const Tensor rows = reshape(input, {-1, weight.size(1)});
  const TensorOptions like_input{.dtype = input.dtype(), .device = input.device()};
  Tensor output = empty({rows.size(0), weight.size(0)}, like_input);
  Tensor pre_activation = activation == LinearActivation::None ? Tensor() : empty(output.shape(), like_input);
  {
    NoGradGuard no_grad;  // recorded below as one node, with the backward written out
    backend_for(input.device()).linear(rows, weight, bias, activation, output, pre_activation);
  }
  if (any_requires_grad({&rows, &weight, &bias})) {
    const bool need_input = rows.requires_grad(), need_weight = weight.requires_grad();
    const bool need_bias = bias.defined() && bias.requires_grad();
    SavedTensor saved_rows(need_weight ? rows : Tensor()), saved_weight(need_input ? weight : Tensor());
    SavedTensor saved_pre_activation(pre_activation);
    record(op, {rows, weight, bias}, {output}, [=](const GradientList& g) {
      // One kernel-table call: dx = dy' W, dW = dy'^T x (made [out, in] directly, so the weight's
      // gradient needs no transposed copy), db = column sums of dy', where dy' is dy through the
      // activation's gradient at the saved pre-activation value.
      const Tensor& grad_output = g[0];
      const Tensor pre = activation == LinearActivation::None ? Tensor() : saved_pre_activation.unpack(op);
      const Tensor saved_input = need_weight ? saved_rows.unpack(op) : Tensor();
      const Tensor saved_w = need_input ? saved_weight.unpack(op) : Tensor();
      const TensorOptions like{.dtype = grad_output.dtype(), .device = grad_output.device()};
      Tensor grad_rows = need_input ? empty({grad_output.size(0), saved_w.size(1)}, like) : Tensor();
      Tensor grad_weight = need_weight ? empty({grad_output.size(1), saved_input.size(1)}, like) : Tensor();
      Tensor grad_bias = need_bias ? empty({grad_output.size(1)}, like) : Tensor();
      {
        NoGradGuard no_grad;
        backend_for(grad_output.device())
            .linear_backward(grad_output.contiguous(), saved_input, saved_w, pre, activation, grad_rows, grad_weight,
                             grad_bias);
      }
      return GradientList{grad_rows, grad_weight, grad_bias};
    });
  }
  return output.view(output_shape);
}

}  // namespace

Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias) {
  check_linear_arguments(input, weight, bias, "linear");
  return linear_node(input, weight, bias, LinearActivation::None, "linear");
}

Tensor linear_gelu(const Tensor& input, const Tensor& weight, const Tensor& bias, GeluApproximation approximation) {
  check_linear_arguments(input, weight, bias, "linear_gelu");
  if (approximation != GeluApproximation::Tanh || !is_floating(input.dtype())) {
    return gelu(linear_node(input, weight, bias, LinearActivation::None, "linear"), approximation);
  }
  return linear_node(input, weight, bias, LinearActivation::GeluTanh, "linear_gelu");
}

Linear::Linear(int64_t in_features, int64_t out_features, bool bias, std::optional<GeluApproximation> gelu)
    : Module("Linear"), in_features_(in_features), out_features_(out_features), gelu_(gelu) {
  if (in_features <= 0 || out_features <= 0) {
    fail("Linear: expected positive sizes, got in_features ", in_features, " and out_features ", out_features);
  }
  double bound = default_init_bound(in_features);
  weight_ = register_parameter("weight", uniform_parameter({out_features, in_features}, bound));
  if (bias) bias_ = register_parameter("bias", uniform_parameter({out_features}, bound));
}

Linear::Linear(const Tensor& shared_weight) : Module("Linear") {
  if (!shared_weight.defined() || shared_weight.dim() != 2) {
    fail("Linear::tied: expected a defined 2-d weight [out, in], got ",
         shared_weight.defined() ? shared_weight.shape().str() : std::string("an undefined tensor"));
  }
  out_features_ = shared_weight.size(0);
  in_features_ = shared_weight.size(1);
  weight_ = register_parameter("weight", shared_weight);
}

std::shared_ptr<Linear> Linear::tied(const Tensor& weight) { return std::shared_ptr<Linear>(new Linear(weight)); }

Tensor Linear::forward(const Tensor& input) {
  return gelu_ ? linear_gelu(input, weight_, bias_, *gelu_) : linear(input, weight_, bias_);
}

}  // namespace dtrain
