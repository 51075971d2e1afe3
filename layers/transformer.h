#pragma once
// The GPT-2 building blocks: the position-wise MLP and the pre-norm transformer block.
#include <cstdint>
#include <memory>

#include "core/ops/unary.h"
#include "layers/attention.h"
#include "layers/layer_norm.h"
#include "layers/linear.h"
#include "layers/module.h"

namespace dtrain {

struct TransformerConfig {
  int64_t d_model = 0;
  int64_t heads = 1;
  int64_t mlp_ratio = 4;  // the MLP's hidden width is mlp_ratio * d_model
  double dropout = 0.0;
  bool bias = true;
  GeluApproximation gelu = GeluApproximation::Tanh;  // GPT-2's
  double layer_norm_eps = 1e-5;
};

// Linear d -> hidden, GELU, Linear hidden -> d, dropout (while training).
class MLP : public Module {
 public:
  MLP(int64_t d_model, int64_t hidden, GeluApproximation gelu = GeluApproximation::None, double dropout = 0.0,
      bool bias = true);

  const std::shared_ptr<Linear>& fc() const { return fc_; }
  const std::shared_ptr<Linear>& proj() const { return proj_; }

 protected:
  Tensor forward(const Tensor& x) override;

 private:
  GeluApproximation gelu_;
  double dropout_;
  std::shared_ptr<Linear> fc_;
  std::shared_ptr<Linear> proj_;
};

// x + attn(ln1(x)), then x + mlp(ln2(x)); children named ln1, attn, ln2, mlp.
class TransformerBlock : public Module {
 public:
  explicit TransformerBlock(const TransformerConfig& config);

  const std::shared_ptr<LayerNorm>& ln1() const { return ln1_; }
  const std::shared_ptr<CausalSelfAttention>& attn() const { return attn_; }
  const std::shared_ptr<LayerNorm>& ln2() const { return ln2_; }
  const std::shared_ptr<MLP>& mlp() const { return mlp_; }

 protected:
  // x [B, T, d_model] -> [B, T, d_model]
  Tensor forward(const Tensor& x) override;

 private:
  std::shared_ptr<LayerNorm> ln1_;
  std::shared_ptr<CausalSelfAttention> attn_;
  std::shared_ptr<LayerNorm> ln2_;
  std::shared_ptr<MLP> mlp_;
};

}  // namespace dtrain
