#pragma once
// The two reference models of the training-step benchmark, built from dtrain's public layers.
// bench/train_step_torch.py builds the same two in PyTorch, layer for layer, so that both have
// the same parameter count and do the same arithmetic.
#include <cstdint>
#include <memory>
#include <vector>

#include "dtrain.h"

namespace dtrain::bench {

// MLP 784-1024-1024-10 with ReLU (a Fashion-MNIST classifier's shape).
inline std::shared_ptr<Module> make_mlp() {
  return std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
      std::make_shared<Linear>(784, 1024), std::make_shared<ReLU>(), std::make_shared<Linear>(1024, 1024),
      std::make_shared<ReLU>(), std::make_shared<Linear>(1024, 10)});
}

struct GptShape {
  int64_t vocabulary = 256;
  int64_t context = 128;
  int64_t d_model = 256;
  int64_t layers = 4;
  int64_t heads = 4;
  int64_t mlp_ratio = 4;
};

// GPT-2's architecture: token + position embeddings, pre-norm blocks (LayerNorm, causal
// attention, GELU-tanh MLP), a final LayerNorm and an output layer tied to the token embedding
// (no bias). No dropout: it would only add random-number work that the two libraries draw
// differently.
class BenchGpt : public Module {
 public:
  explicit BenchGpt(const GptShape& shape) : Module("BenchGpt") {
    token_embedding_ = register_module("token_embedding", std::make_shared<Embedding>(shape.vocabulary, shape.d_model));
    position_embedding_ =
        register_module("position_embedding", std::make_shared<Embedding>(shape.context, shape.d_model));
    blocks_ = register_module("blocks", std::make_shared<ModuleList>());
    for (int64_t i = 0; i < shape.layers; ++i) {
      blocks_->push_back(std::make_shared<TransformerBlock>(TransformerConfig{
          .d_model = shape.d_model, .heads = shape.heads, .mlp_ratio = shape.mlp_ratio,
          .gelu = GeluApproximation::Tanh}));
    }
    final_norm_ = register_module("final_norm", std::make_shared<LayerNorm>(shape.d_model));
    // A module of its own, so that ZeRO stage 3 gathers the tied weight around it.
    output_ = register_module("output", Linear::tied(token_embedding_->weight()));
    NoGradGuard no_grad;  // GPT-2's N(0, 0.02^2) embeddings keep the first logits small
    for (Tensor weight : {token_embedding_->weight(), position_embedding_->weight()}) {
      reinitialize_normal(weight, 0.0, 0.02);
    }
  }

 protected:
  // tokens [B, T] int64 -> logits [B, T, vocabulary]
  Tensor forward(const Tensor& tokens) override {
    Tensor x = (*token_embedding_)(tokens) + (*position_embedding_)(arange(tokens.size(1)));
    for (const std::shared_ptr<Module>& block : *blocks_) x = (*block)(x);
    return (*output_)((*final_norm_)(x));
  }

 private:
  std::shared_ptr<Embedding> token_embedding_;
  std::shared_ptr<Embedding> position_embedding_;
  std::shared_ptr<ModuleList> blocks_;
  std::shared_ptr<LayerNorm> final_norm_;
  std::shared_ptr<Linear> output_;
};

}  // namespace dtrain::bench
