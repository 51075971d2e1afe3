#include "layers/transformer.h"

#include "core/dtype.h"
#include "core/ops/elementwise.h"
#include "layers/dropout.h"
#include "layers/feed_forward.h"

namespace dtrain {

MLP::MLP(int64_t d_model, int64_t hidden, GeluApproximation gelu, double dropout, bool bias)
    : Module("MLP"), gelu_(gelu), dropout_(dropout) {
  // fc applies the GELU itself (linear_gelu) when called on its own; forward runs fc and proj as one
  // node for the tanh GELU (feed_forward_gelu), the same values from the same parameters.
  fc_ = register_module("fc", std::make_shared<Linear>(d_model, hidden, bias, gelu));
  proj_ = register_module("proj", std::make_shared<Linear>(hidden, d_model, bias));
}

Tensor MLP::forward(const Tensor& x) {
  if (gelu_ != GeluApproximation::Tanh || !is_floating(x.dtype())) {
    return dropout((*proj_)((*fc_)(x)), dropout_, is_training());
  }
  // fc, GELU and proj as one node (feed_forward_gelu), so that the backward folds the GELU's
  // gradient and fc's bias gradient into proj's input-gradient GEMM. fc's and proj's hooks fire
  // around it, nested as their calls were (fc's before proj's in the forward), so that ZeRO stage 3
  // gathers both modules' parameters for it, forward and backward.
  Tensor y = fc_->call_with_hooks(x, [&] {
    return proj_->call_with_hooks(x, [&] {
      return feed_forward_gelu(x, fc_->weight(), fc_->bias(), proj_->weight(), proj_->bias());
    });
  });
  return dropout(y, dropout_, is_training());
}

TransformerBlock::TransformerBlock(const TransformerConfig& config) : Module("TransformerBlock") {
  if (config.mlp_ratio <= 0) fail("TransformerBlock: expected a positive mlp_ratio, got ", config.mlp_ratio);
  ln1_ = register_module("ln1", std::make_shared<LayerNorm>(config.d_model, config.layer_norm_eps));
  attn_ = register_module("attn", std::make_shared<CausalSelfAttention>(AttentionConfig{
                                      .d_model = config.d_model, .heads = config.heads, .dropout = config.dropout,
                                      .bias = config.bias}));
  ln2_ = register_module("ln2", std::make_shared<LayerNorm>(config.d_model, config.layer_norm_eps));
  mlp_ = register_module("mlp", std::make_shared<MLP>(config.d_model, config.mlp_ratio * config.d_model, config.gelu,
                                                      config.dropout, config.bias));
}

Tensor TransformerBlock::forward(const Tensor& x) {
  // h = x + attn(ln1(x)) and ln2(h) in one op (add_layer_norm), the second residual add alone.
  AddedAndNormalized h = ln2_->add_and_normalize(x, (*attn_)((*ln1_)(x)));
  return add(h.sum, (*mlp_)(h.normalized));
}

}  // namespace dtrain
