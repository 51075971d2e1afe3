#pragma once
// LayerNorm: normalises over the last dimensions (normalized_shape), then scales and shifts.
#include <cstdint>

#include "layers/module.h"

namespace dtrain {

// (x - mean) / sqrt(var + eps) * weight + bias over x's trailing normalized_shape dims, with the
// biased variance (as PyTorch). weight and bias have normalized_shape, or are undefined. Float32
// and float64 CPU tensors take one fused pass each way; others are composed from tensor ops.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);

// x + residual and the layer norm of that sum, as one op: the residual add of a pre-norm
// transformer block fused into the LayerNorm after it (one kernel each way on the fused path).
// residual has x's shape, dtype and device.
struct AddedAndNormalized {
  Tensor sum;         // x + residual
  Tensor normalized;  // layer_norm(sum)
};
AddedAndNormalized add_layer_norm(const Tensor& x, const Tensor& residual, const Shape& normalized_shape,
                                  const Tensor& weight = Tensor(), const Tensor& bias = Tensor(), double eps = 1e-5);

namespace detail {
// The same function built from tensor ops (the path for other devices and dtypes); public so
// tests can hold the fused kernel against it.
Tensor layer_norm_composed(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                           double eps);
}  // namespace detail

class LayerNorm : public Module {
 public:
  // Weight 1 and bias 0 when elementwise_affine, as PyTorch.
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true);
  explicit LayerNorm(int64_t size, double eps = 1e-5, bool elementwise_affine = true)
      : LayerNorm(Shape{size}, eps, elementwise_affine) {}

  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  const Shape& normalized_shape() const { return normalized_shape_; }
  double eps() const { return eps_; }
  ModuleSettings describe() const override { return {{"eps", setting_text(eps_)}}; }

  // add_layer_norm(x, residual) with this module's parameters, run as a call of the module (its
  // hooks fire around it, input x, output the normalized tensor).
  AddedAndNormalized add_and_normalize(const Tensor& x, const Tensor& residual);

 protected:
  Tensor forward(const Tensor& x) override;

 private:
  Shape normalized_shape_;
  double eps_;
  Tensor weight_;
  Tensor bias_;
};

}  // namespace dtrain
