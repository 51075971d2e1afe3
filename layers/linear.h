#pragma once
// Linear: y = x W^T + b over the last dimension of x, any leading dimensions.
#include <cstdint>
#include <memory>
#include <optional>

#include "core/ops/unary.h"
#include "layers/module.h"

namespace dtrain {

// input [..., in], weight [out, in], bias [out] or undefined -> [..., out]. The leading dims are
// folded into one, so the product is a single matrix multiply, not a batch of small ones.
Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias = Tensor());

// gelu(linear(input, weight, bias), approximation) as one node. With the tanh approximation on
// CUDA the bias and GELU run in the GEMM's epilogue (cuBLASLt), which also keeps the value before
// the GELU for the backward; elsewhere (and for the erf GELU) the same values as the two ops.
Tensor linear_gelu(const Tensor& input, const Tensor& weight, const Tensor& bias,
                   GeluApproximation approximation = GeluApproximation::Tanh);

class Linear : public Module {
 public:
  // Weight and bias from U(-1/sqrt(in), 1/sqrt(in)), as PyTorch. With gelu, the module's output is
  // that GELU of the linear map, computed by linear_gelu (one node; fused on CUDA): an MLP's first
  // layer, so its module hooks (ZeRO stage 3 gathers around them) still see its own parameters.
  Linear(int64_t in_features, int64_t out_features, bool bias = true,
         std::optional<GeluApproximation> gelu = std::nullopt);
  // A Linear without a bias whose weight ([out, in]) is another module's: a language model's
  // output layer tied to its token embedding, as
  //   output_ = register_module("output", Linear::tied(token_embedding_->weight()));
  // The weight is registered here too (named_parameters() lists it once, under its first name),
  // so hooks around this module's forward see it: ZeRO stage 3 gathers it for this module,
  // which it cannot do for a parameter read directly in a parent's forward.
  static std::shared_ptr<Linear> tied(const Tensor& weight);

  const Tensor& weight() const { return weight_; }  // [out, in]
  const Tensor& bias() const { return bias_; }      // [out]; undefined when built without bias
  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  const std::optional<GeluApproximation>& gelu() const { return gelu_; }
  // The GELU applied to the output: the one setting its parameters do not show.
  ModuleSettings describe() const override {
    return {{"activation", !gelu_ ? "none" : *gelu_ == GeluApproximation::Tanh ? "gelu tanh" : "gelu"}};
  }

 protected:
  Tensor forward(const Tensor& input) override;

 private:
  explicit Linear(const Tensor& shared_weight);

  int64_t in_features_;
  int64_t out_features_;
  std::optional<GeluApproximation> gelu_;  // applied to the output when set
  Tensor weight_;
  Tensor bias_;
};

}  // namespace dtrain
