#include "layers/linear.h"

#include "core/grad_mode.h"
#include "core/graph.h"
#include "core/ops/elementwise.h"
#include "core/ops/matmul.h"
#include "core/ops/reduce.h"
#include "core/ops/view.h"
#include "layers/init.h"

namespace dtrain {

Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias) {
  check_defined(input, "linear", "input");
  check_defined(weight, "linear", "weight");
  if (weight.dim() != 2) fail("linear: expected a 2-d weight [out, in], got shape ", weight.shape());
  if (input.dim() == 0 || input.size(-1) != weight.size(1)) {
    fail("linear: expected input [..., ", weight.size(1), "] for weight of shape ", weight.shape(), ", got input of shape ",
         input.shape());
  }
  if (input.dtype() != weight.dtype()) {
    fail("linear: expected input of the weight's dtype ", weight.dtype(), ", got ", input.dtype(),
         " (convert the input, or the module with .to(dtype))");
  }
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != weight.size(0))) {
    fail("linear: expected bias of shape [", weight.size(0), "], got ", bias.shape());
  }
  // Leading dims fold into rows: [rows, in] @ W^T is one GEMM (W^T is a strided view, no copy).
  Shape output_shape = input.shape();
  output_shape.back() = weight.size(0);
  const Tensor rows = reshape(input, {-1, weight.size(1)});
  Tensor output;
  {
    NoGradGuard no_grad;  // recorded below as one node, with the backward written out
    output = matmul(rows, transpose(weight, 0, 1));
    if (bias.defined()) output.add_(bias);  // in place: output is fresh and nothing else sees it
  }
  if (any_requires_grad({&rows, &weight, &bias})) {
    const bool need_input = rows.requires_grad(), need_weight = weight.requires_grad();
    const bool need_bias = bias.defined() && bias.requires_grad();
    SavedTensor saved_rows(need_weight ? rows : Tensor()), saved_weight(need_input ? weight : Tensor());
    record("linear", {rows, weight, bias}, {output}, [=](const GradientList& g) {
      // dx = dy W, dW = dy^T x (made [out, in] directly, so the weight's gradient needs no
      // transposed copy), db = column sums of dy.
      const Tensor& grad_output = g[0];
      Tensor grad_rows = need_input ? matmul(grad_output, saved_weight.unpack("linear")) : Tensor();
      Tensor grad_weight = need_weight ? matmul(transpose(grad_output, 0, 1), saved_rows.unpack("linear")) : Tensor();
      Tensor grad_bias = need_bias ? sum(grad_output, {0}) : Tensor();
      return GradientList{grad_rows, grad_weight, grad_bias};
    });
  }
  return output.view(output_shape);
}

Linear::Linear(int64_t in_features, int64_t out_features, bool bias)
    : Module("Linear"), in_features_(in_features), out_features_(out_features) {
  if (in_features <= 0 || out_features <= 0) {
    fail("Linear: expected positive sizes, got in_features ", in_features, " and out_features ", out_features);
  }
  double bound = default_init_bound(in_features);
  weight_ = register_parameter("weight", uniform_parameter({out_features, in_features}, bound));
  if (bias) bias_ = register_parameter("bias", uniform_parameter({out_features}, bound));
}

Tensor Linear::forward(const Tensor& input) { return linear(input, weight_, bias_); }

}  // namespace dtrain
