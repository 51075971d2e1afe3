#include "layers/attention.h"

#include <atomic>
#include <cmath>
#include <vector>

#include "core/backend.h"
#include "core/graph.h"
#include "core/ops/elementwise.h"
#include "core/ops/factory.h"
#include "core/ops/join.h"
#include "core/ops/matmul.h"
#include "core/ops/view.h"
#include "layers/causal_softmax.h"
#include "layers/dropout.h"

namespace dtrain {

Tensor causal_mask(int64_t length, Device device) {
  Tensor positions = arange(length, {.dtype = kInt64, .device = device});
  return gt(unsqueeze(positions, 0), unsqueeze(positions, 1));  // [1, T] > [T, 1]: column > row
}

namespace {

std::atomic<bool> fused_attention_allowed{true};

// Backend::attention for [B, H, T, D] q, k, v with a contiguous last dim; undefined when the
// device's fused kernel declines the case (Backend::supports), so the caller composes.
Tensor fused_causal_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, double scale) {
  auto last_dim_contiguous = [](const Tensor& t) { return t.stride(-1) == 1 ? t : contiguous(t); };
  const Tensor q = last_dim_contiguous(q_in), k = last_dim_contiguous(k_in), v = last_dim_contiguous(v_in);
  Backend& kernels = backend_for(q.device());
  if (!kernels.supports({.kernel = FusedKernel::Attention, .tensors = {q, k, v}}).supported) return Tensor();
  Tensor out = empty(q.shape(), {.dtype = q.dtype(), .device = q.device()});
  Tensor lse = empty({q.size(0), q.size(1), q.size(2)}, {.dtype = kFloat32, .device = q.device()});
  kernels.attention(q, k, v, scale, out, lse);
  if (any_requires_grad({&q, &k, &v})) {
    SavedTensor saved_q(q), saved_k(k), saved_v(v), saved_out(out), saved_lse(lse);
    record("causal_attention", {q, k, v}, {out}, [=](const GradientList& g) {
      const char* op = "causal_attention";
      const Tensor saved_query = saved_q.unpack(op);
      const Tensor grad_out = contiguous(g[0].dtype() == saved_query.dtype() ? g[0] : g[0].to(saved_query.dtype()));
      const TensorOptions like{.dtype = saved_query.dtype(), .device = saved_query.device()};
      Tensor grad_q = empty(saved_query.shape(), like), grad_k = empty(saved_query.shape(), like),
             grad_v = empty(saved_query.shape(), like);
      // The query that took the forward covered this backward too.
      backend_for(saved_query.device())
          .attention_backward(grad_out, saved_query, saved_k.unpack(op), saved_v.unpack(op), saved_out.unpack(op),
                              saved_lse.unpack(op), scale, grad_q, grad_k, grad_v);
      return GradientList{grad_q, grad_k, grad_v};
    });
  }
  return out;
}

}  // namespace

void set_fused_attention_enabled(bool enabled) { fused_attention_allowed.store(enabled); }
bool fused_attention_enabled() { return fused_attention_allowed.load(); }

Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, double dropout_p, bool training) {
  check_defined(q, "causal_attention", "q");
  check_defined(k, "causal_attention", "k");
  check_defined(v, "causal_attention", "v");
  if (q.dim() < 2 || q.shape() != k.shape() || q.shape() != v.shape()) {
    fail("causal_attention: expected q, k and v of one shape [..., T, head_dim], got ", q.shape(), ", ", k.shape(),
         " and ", v.shape());
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  const bool dropout_active = training && dropout_p > 0.0;
  if (!dropout_active && q.dim() == 4 && fused_attention_enabled()) {
    if (Tensor out = fused_causal_attention(q, k, v, scale); out.defined()) return out;
  }
  // Scaling q ([T, hd]) costs less than scaling the scores ([T, T]) once T > hd.
  Tensor scaled_q = mul(q, scale);
  Tensor scores = matmul(scaled_q, transpose(k, -2, -1));  // [..., T, T]
  Tensor weights = dropout(causal_softmax(scores), dropout_p, training);  // the future masked inside
  return matmul(weights, v);
}

CausalSelfAttention::CausalSelfAttention(const AttentionConfig& config) : Module("CausalSelfAttention"), config_(config) {
  if (config.d_model <= 0 || config.heads <= 0 || config.d_model % config.heads != 0) {
    fail("CausalSelfAttention: expected d_model a positive multiple of heads, got d_model ", config.d_model, " and heads ",
         config.heads);
  }
  qkv_ = register_module("qkv", std::make_shared<Linear>(config.d_model, 3 * config.d_model, config.bias));
  proj_ = register_module("proj", std::make_shared<Linear>(config.d_model, config.d_model, config.bias));
}

ModuleSettings CausalSelfAttention::describe() const {
  return {{"d_model", setting_text(config_.d_model)},
          {"heads", setting_text(config_.heads)},
          {"dropout", setting_text(config_.dropout)},
          {"bias", setting_text(config_.bias)}};
}

Tensor CausalSelfAttention::forward(const Tensor& x) {
  check_defined(x, "CausalSelfAttention", "x");
  if (x.dim() != 3 || x.size(2) != config_.d_model) {
    fail("CausalSelfAttention: expected input [batch, time, ", config_.d_model, "], got ", x.shape());
  }
  const int64_t batch = x.size(0), length = x.size(1), heads = config_.heads;
  const int64_t head_dim = config_.d_model / heads;
  // [B, T, 3C] -> [3, B, heads, T, head_dim]: views only; q, k, v are slices of one tensor.
  // chunk, not three selects: its backward writes the three gradients into one tensor, where
  // each select's would fill a zero tensor of the full size and the three would then be added.
  Tensor qkv = (*qkv_)(x).view({batch, length, 3, heads, head_dim}).permute({2, 0, 3, 1, 4});
  std::vector<Tensor> q_k_v = chunk(qkv, 3, 0);
  Tensor attended = causal_attention(squeeze(q_k_v[0], 0), squeeze(q_k_v[1], 0), squeeze(q_k_v[2], 0),
                                     config_.dropout, is_training());
  // [B, heads, T, head_dim] -> [B, T, C]: the heads side by side again.
  Tensor merged = attended.transpose(1, 2).reshape({batch, length, config_.d_model});
  return dropout((*proj_)(merged), config_.dropout, is_training());
}

}  // namespace dtrain
