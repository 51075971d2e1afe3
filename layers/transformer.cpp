#include "layers/transformer.h"

#include "core/ops/elementwise.h"
#include "layers/dropout.h"

namespace dtrain {

MLP::MLP(int64_t d_model, int64_t hidden, GeluApproximation gelu, double dropout, bool bias)
    : Module("MLP"), gelu_(gelu), dropout_(dropout) {
  // fc applies the GELU itself (linear_gelu: one node, and on CUDA one GEMM whose epilogue adds the
  // bias, applies the GELU and keeps its input for the backward).
  fc_ = register_module("fc", std::make_shared<Linear>(d_model, hidden, bias, gelu));
  proj_ = register_module("proj", std::make_shared<Linear>(hidden, d_model, bias));
}

Tensor MLP::forward(const Tensor& x) {
  return dropout((*proj_)((*fc_)(x)), dropout_, is_training());
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
