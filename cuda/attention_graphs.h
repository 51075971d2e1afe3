#pragma once
// The operation graphs cuda/attention.cpp hands cuDNN for causal flash attention: the graphs
// cuDNN's own frontend builds (its composite SDPA nodes), node for node, which cuDNN recognises as
// its fused flash-attention pattern. Part of builds with cuDNN only.
//
// Forward, with S = scores [B, H, T, T] (virtual tensors in float32 unless said):
//   S = Q @ K^T                       K^T: K's memory described as [B, H, D, T]
//   S = S * scale                     scale: a float32 passed by value
//   S = select(row >= col, S, fill)   row, col: GEN_INDEX over dims 2 and 3; fill by value (-inf)
//   m = max_col S;  E = exp(S - m);  z = sum_col E
//   stats = m + log z                 [B, H, T, 1] float32 in memory
//   P = E / z                         in the input dtype: the second matmul's A operand
//   O = P @ V
// Backward (dO, O, stats in; dQ, dK, dV out):
//   d = sum_col(dO * O) * 1           [B, H, T, 1] float32 in memory (cuDNN's kernels want it there)
//   P = exp(select(row >= col, S * scale - stats, fill))        P recomputed from the stats
//   dV = P^T @ dO                     P^T: a reshape (transposed strides), in the input dtype
//   dS = P * (dO @ V^T - d) * scale
//   dK = dS^T @ Q                     dS^T: a reshape, in the input dtype
//   dQ = identity(dS @ K)             dS @ K into a float32 accumulator in memory; K: a reshape of K^T
//
//   attention_graphs::Problem problem = ...;  // shapes, strides, dtype
//   cudnn_graph::GraphBuilder graph;
//   attention_graphs::describe_forward(graph, problem, attention_graphs::IndexMath::Float);
//   std::optional<cudnn_graph::Plan> plan = graph.build_plan(handle);
#include <array>
#include <compare>
#include <cstdint>

#include "core/dtype.h"
#include "cuda/cudnn_graph.h"

namespace dtrain::cuda::attention_graphs {

using cudnn_graph::Uid;
using Strides4 = std::array<int64_t, 4>;

// The graphs' tensors that live in memory (the variant pack's entries).
enum : Uid {
  kQ = 1,
  kKTransposed,
  kV,  // [B, H, T, D] in the forward, V^T [B, H, D, T] in the backward
  kOut,
  kStats,
  kGradOut,
  kGradQ,
  kGradK,
  kGradV,
  kRowDot,            // sum_col(dO * O), float32
  kGradQAccumulator,  // dS @ K in float32
  kScale,             // by value
  kMaskFill,          // by value
  kOne,               // by value
};

// The two ways cuDNN's frontend has typed the causal mask's index tensors over its releases (the
// current one computes GEN_INDEX at float precision, earlier ones at int32); the second is tried
// when cuDNN declines the first.
enum class IndexMath { Float, Int32 };

// What a plan depends on. Strides of size-1 dims are normalised (they never move the address).
struct Problem {
  bool backward = false;
  int device = 0;
  DType dtype = kBFloat16;
  int64_t batch = 0, heads = 0, tokens = 0, head_size = 0;
  Strides4 q{}, k{}, v{};
  Strides4 out{}, grad_out{};  // backward only
  auto operator<=>(const Problem&) const = default;
};

// q, k, v as the problem describes them, o and stats packed [B, H, T, D] and [B, H, T, 1].
void describe_forward(cudnn_graph::GraphBuilder& g, const Problem& p, IndexMath math);
// The forward's inputs plus O and dO (their strides in p), stats; dQ, dK, dV packed; the float32
// row dots [B, H, T, 1] and dQ accumulator [B, H, T, D] packed, in memory the caller provides.
void describe_backward(cudnn_graph::GraphBuilder& g, const Problem& p, IndexMath math);

}  // namespace dtrain::cuda::attention_graphs
