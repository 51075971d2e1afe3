#pragma once
// Multi-head causal self-attention, as in GPT-2: one projection makes queries, keys and values
// for all heads, each position attends to itself and the positions before it, and an output
// projection mixes the heads.
#include <cstdint>
#include <memory>

#include "layers/linear.h"
#include "layers/module.h"

namespace dtrain {

struct AttentionConfig {
  int64_t d_model = 0;  // must be a multiple of heads
  int64_t heads = 1;
  double dropout = 0.0;  // on the attention weights and on the output, while training
  bool bias = true;      // of the two projections
};

// Bool [length, length], true where column > row: the future positions a query must not see.
Tensor causal_mask(int64_t length, Device device = Device::cpu());

// softmax(q k^T / sqrt(head_dim), future masked) v for q, k, v [..., T, head_dim], batched
// over the leading dims (batch, heads) in single matrix multiplies. For 4-d [B, H, T, D] inputs
// without active dropout, the device's fused flash-attention kernel (Backend::attention: cuDNN
// on CUDA for bf16/fp16) runs when it takes the case; otherwise, and always on the CPU, the
// composed path: matmul, causal_softmax, matmul.
Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, double dropout_p = 0.0,
                        bool training = false);

// Whether causal_attention may use a fused kernel (on by default), as PyTorch's
// torch.backends.cuda.enable_flash_sdp: off, every device runs the composed path (for tests and
// comparisons). Process-wide.
void set_fused_attention_enabled(bool enabled);
bool fused_attention_enabled();

class CausalSelfAttention : public Module {
 public:
  explicit CausalSelfAttention(const AttentionConfig& config);

  const AttentionConfig& config() const { return config_; }
  ModuleSettings describe() const override;
  const std::shared_ptr<Linear>& qkv() const { return qkv_; }    // d_model -> 3 d_model
  const std::shared_ptr<Linear>& proj() const { return proj_; }  // d_model -> d_model

 protected:
  // x [B, T, d_model] -> [B, T, d_model]
  Tensor forward(const Tensor& x) override;

 private:
  AttentionConfig config_;
  std::shared_ptr<Linear> qkv_;
  std::shared_ptr<Linear> proj_;
};

}  // namespace dtrain
