#include "layers/gpt.h"

#include "core/error.h"
#include "core/grad_mode.h"
#include "core/ops/elementwise.h"
#include "core/ops/factory.h"
#include "layers/init.h"
#include "layers/transformer.h"

namespace dtrain {

GPT::GPT(const GPTConfig& config) : Module("GPT"), config_(config) {
  if (config.vocabulary < 1 || config.context < 1 || config.d_model < 1 || config.layers < 0 || config.heads < 1 ||
      config.mlp_ratio < 1) {
    fail("GPT: expected a positive vocabulary, context, d_model, heads and mlp_ratio and layers >= 0, got vocabulary ",
         config.vocabulary, ", context ", config.context, ", d_model ", config.d_model, ", layers ", config.layers,
         ", heads ", config.heads, ", mlp_ratio ", config.mlp_ratio);
  }
  token_embedding_ = register_module("token_embedding", std::make_shared<Embedding>(config.vocabulary, config.d_model));
  position_embedding_ = register_module("position_embedding", std::make_shared<Embedding>(config.context, config.d_model));
  dropout_ = register_module("dropout", std::make_shared<Dropout>(config.dropout));
  blocks_ = register_module("blocks", std::make_shared<ModuleList>());
  for (int64_t i = 0; i < config.layers; ++i) {
    blocks_->push_back(std::make_shared<TransformerBlock>(TransformerConfig{
        .d_model = config.d_model, .heads = config.heads, .mlp_ratio = config.mlp_ratio, .dropout = config.dropout}));
  }
  final_norm_ = register_module("final_norm", std::make_shared<LayerNorm>(config.d_model));
  // The output layer reuses the token embedding's weight (weight tying, as GPT-2), as a module
  // of its own, so that ZeRO stage 3 gathers the weight around it.
  output_ = register_module("output", Linear::tied(token_embedding_->weight()));
  // GPT-2 draws embeddings from N(0, 0.02^2). PyTorch's Embedding default, N(0, 1), would make
  // the first logits (through the tied output layer) so large that training starts far off.
  NoGradGuard no_grad;
  for (Tensor weight : {token_embedding_->weight(), position_embedding_->weight()}) {
    reinitialize_normal(weight, 0.0, 0.02);
  }
}

Tensor GPT::forward(const Tensor& tokens) {
  if (tokens.dim() != 2 || tokens.size(1) > config_.context) {
    fail("GPT: expected tokens [batch, time] with time <= context ", config_.context, ", got ", tokens.shape());
  }
  Tensor positions = arange(tokens.size(1), {.dtype = kInt64, .device = tokens.device()});
  Tensor x = (*dropout_)((*token_embedding_)(tokens) + (*position_embedding_)(positions));
  for (const std::shared_ptr<Module>& block : *blocks_) x = (*block)(x);
  return (*output_)((*final_norm_)(x));
}

}  // namespace dtrain
