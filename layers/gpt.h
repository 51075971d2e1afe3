#pragma once
// GPT: GPT-2's architecture — token and position embeddings, pre-norm transformer blocks with
// tanh-GELU MLPs, a final LayerNorm and an output layer tied to the token embedding. Parameters
// are named token_embedding, position_embedding, blocks.<i>.{ln1,attn,ln2,mlp}, final_norm (and
// output, the tied layer, whose weight is token_embedding.weight); train/gpt2_conversion.h maps
// them to and from the Hugging Face GPT-2 layout.
//   auto model = std::make_shared<GPT>(GPTConfig{.vocabulary = 50304, .context = 1024,
//                                                .d_model = 768, .layers = 12, .heads = 12});
#include <cstdint>
#include <memory>

#include "layers/container.h"
#include "layers/dropout.h"
#include "layers/embedding.h"
#include "layers/layer_norm.h"
#include "layers/linear.h"
#include "layers/module.h"

namespace dtrain {

struct GPTConfig {
  int64_t vocabulary = 256;
  int64_t context = 128;  // tokens the model sees at once
  int64_t d_model = 256;
  int64_t layers = 4;
  int64_t heads = 4;
  int64_t mlp_ratio = 4;  // the MLP's hidden width is mlp_ratio * d_model
  double dropout = 0.0;
};

class GPT : public Module {
 public:
  explicit GPT(const GPTConfig& config);

  const GPTConfig& config() const { return config_; }

 protected:
  // tokens [B, T] int64 (T <= context) -> logits [B, T, vocabulary]
  Tensor forward(const Tensor& tokens) override;

 private:
  GPTConfig config_;
  std::shared_ptr<Embedding> token_embedding_;
  std::shared_ptr<Embedding> position_embedding_;
  std::shared_ptr<Dropout> dropout_;
  std::shared_ptr<ModuleList> blocks_;
  std::shared_ptr<LayerNorm> final_norm_;
  std::shared_ptr<Linear> output_;
};

}  // namespace dtrain
