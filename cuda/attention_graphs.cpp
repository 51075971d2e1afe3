#ifdef DTRAIN_WITH_CUDNN

#include "cuda/attention_graphs.h"

namespace dtrain::cuda::attention_graphs {
namespace {

using cudnn_graph::GraphBuilder;
using cudnn_graph::kNoTensor;
using cudnn_graph::Shape4;

cudnnDataType_t io_type(DType dtype) { return dtype == kFloat16 ? CUDNN_DATA_HALF : CUDNN_DATA_BFLOAT16; }

Shape4 packed(std::array<int64_t, 4> dims) {
  return {dims, {dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1}};
}
Shape4 bhtd(const Problem& p, const Strides4& strides) {
  return {{p.batch, p.heads, p.tokens, p.head_size}, strides};
}
// The same memory seen as [B, H, D, T]: what the matmuls take as K^T and V^T.
Shape4 bhdt(const Problem& p, const Strides4& strides) {
  return {{p.batch, p.heads, p.head_size, p.tokens}, {strides[0], strides[1], strides[3], strides[2]}};
}
Shape4 scores(const Problem& p) { return packed({p.batch, p.heads, p.tokens, p.tokens}); }
Shape4 scores_transposed(const Problem& p) {
  const int64_t t = p.tokens;
  return {{p.batch, p.heads, t, t}, {p.heads * t * t, t * t, 1, t}};
}
Shape4 rows(const Problem& p) { return packed({p.batch, p.heads, p.tokens, 1}); }

Uid unary(GraphBuilder& g, cudnnPointwiseMode_t mode, Uid x, const Shape4& shape, const char* name) {
  const Uid y = g.virtual_tensor(CUDNN_DATA_FLOAT, shape, name);
  g.pointwise(mode, x, kNoTensor, kNoTensor, y, CUDNN_DATA_FLOAT, -1, name);
  return y;
}
Uid binary(GraphBuilder& g, cudnnPointwiseMode_t mode, Uid x, Uid b, const Shape4& shape, const char* name) {
  const Uid y = g.virtual_tensor(CUDNN_DATA_FLOAT, shape, name);
  g.pointwise(mode, x, b, kNoTensor, y, CUDNN_DATA_FLOAT, -1, name);
  return y;
}

// Keeps the scores where row >= column (the past and the token itself), kMaskFill elsewhere.
Uid causal_mask(GraphBuilder& g, Uid scores, const Shape4& shape, IndexMath math) {
  const cudnnDataType_t index_math = math == IndexMath::Int32 ? CUDNN_DATA_INT32 : CUDNN_DATA_FLOAT;
  const Uid row = g.virtual_tensor(CUDNN_DATA_INT32, shape, "row index");
  g.pointwise(CUDNN_POINTWISE_GEN_INDEX, scores, kNoTensor, kNoTensor, row, index_math, 2, "row index");
  const Uid column = g.virtual_tensor(CUDNN_DATA_INT32, shape, "column index");
  g.pointwise(CUDNN_POINTWISE_GEN_INDEX, scores, kNoTensor, kNoTensor, column, index_math, 3, "column index");
  const Uid keep = g.virtual_tensor(CUDNN_DATA_BOOLEAN, shape, "row >= column");
  g.pointwise(CUDNN_POINTWISE_CMP_GE, row, column, kNoTensor, keep, CUDNN_DATA_BOOLEAN, -1, "row >= column");
  const Uid masked = g.virtual_tensor(CUDNN_DATA_FLOAT, shape, "causal mask");
  g.pointwise(CUDNN_POINTWISE_BINARY_SELECT, scores, kMaskFill, keep, masked, CUDNN_DATA_FLOAT, -1, "causal mask");
  return masked;
}

}  // namespace

void describe_forward(GraphBuilder& g, const Problem& p, IndexMath math) {
  const cudnnDataType_t io = io_type(p.dtype);
  g.tensor(kQ, io, bhtd(p, p.q), "Q");
  g.tensor(kKTransposed, io, bhdt(p, p.k), "K^T");
  g.tensor(kV, io, bhtd(p, p.v), "V");
  g.tensor(kOut, io, packed({p.batch, p.heads, p.tokens, p.head_size}), "O");
  g.tensor(kStats, CUDNN_DATA_FLOAT, rows(p), "stats");
  g.scalar(kScale, "scale");
  g.scalar(kMaskFill, "mask fill");

  const Uid product = g.virtual_tensor(CUDNN_DATA_FLOAT, scores(p), "Q K^T");
  g.matmul(kQ, kKTransposed, product, "Q K^T");
  const Uid scaled = binary(g, CUDNN_POINTWISE_MUL, product, kScale, scores(p), "S * scale");
  const Uid masked = causal_mask(g, scaled, scores(p), math);

  // The softmax, keeping its log-sum-exp for the backward.
  const Uid max = g.virtual_tensor(CUDNN_DATA_FLOAT, rows(p), "row max");
  g.reduction(CUDNN_REDUCE_TENSOR_MAX, masked, max, "row max");
  const Uid shifted = binary(g, CUDNN_POINTWISE_SUB, masked, max, scores(p), "S - max");
  const Uid exponentials = unary(g, CUDNN_POINTWISE_EXP, shifted, scores(p), "exp(S - max)");
  const Uid sum = g.virtual_tensor(CUDNN_DATA_FLOAT, rows(p), "row sum");
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, exponentials, sum, "row sum");
  const Uid log_sum = unary(g, CUDNN_POINTWISE_LOG, sum, rows(p), "log(row sum)");
  g.pointwise(CUDNN_POINTWISE_ADD, max, log_sum, kNoTensor, kStats, CUDNN_DATA_FLOAT, -1, "stats");
  const Uid probabilities = g.virtual_tensor(io, scores(p), "P");
  g.pointwise(CUDNN_POINTWISE_DIV, exponentials, sum, kNoTensor, probabilities, CUDNN_DATA_FLOAT, -1, "P");
  g.matmul(probabilities, kV, kOut, "P V");
}

void describe_backward(GraphBuilder& g, const Problem& p, IndexMath math) {
  const cudnnDataType_t io = io_type(p.dtype);
  const Shape4 packed_bhtd = packed({p.batch, p.heads, p.tokens, p.head_size});
  g.tensor(kQ, io, bhtd(p, p.q), "Q");
  g.tensor(kKTransposed, io, bhdt(p, p.k), "K^T");
  g.tensor(kV, io, bhdt(p, p.v), "V^T");
  g.tensor(kOut, io, bhtd(p, p.out), "O");
  g.tensor(kGradOut, io, bhtd(p, p.grad_out), "dO");
  g.tensor(kStats, CUDNN_DATA_FLOAT, rows(p), "stats");
  g.tensor(kGradQ, io, packed_bhtd, "dQ");
  g.tensor(kGradK, io, packed_bhtd, "dK");
  g.tensor(kGradV, io, packed_bhtd, "dV");
  g.tensor(kRowDot, CUDNN_DATA_FLOAT, rows(p), "sum(dO * O)");
  g.tensor(kGradQAccumulator, CUDNN_DATA_FLOAT, packed_bhtd, "dQ accumulator");
  g.scalar(kScale, "scale");
  g.scalar(kMaskFill, "mask fill");
  g.scalar(kOne, "one");

  // The softmax backward's row term.
  const Uid product = binary(g, CUDNN_POINTWISE_MUL, kGradOut, kOut, packed_bhtd, "dO * O");
  const Uid dot = g.virtual_tensor(CUDNN_DATA_FLOAT, rows(p), "sum(dO * O)");
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, product, dot, "sum(dO * O)");
  g.pointwise(CUDNN_POINTWISE_MUL, dot, kOne, kNoTensor, kRowDot, CUDNN_DATA_FLOAT, -1, "sum(dO * O) * 1");

  // P from the forward's statistics.
  const Uid qk = g.virtual_tensor(CUDNN_DATA_FLOAT, scores(p), "Q K^T");
  g.matmul(kQ, kKTransposed, qk, "Q K^T");
  const Uid scaled = binary(g, CUDNN_POINTWISE_MUL, qk, kScale, scores(p), "S * scale");
  const Uid shifted = binary(g, CUDNN_POINTWISE_SUB, scaled, kStats, scores(p), "S - stats");
  const Uid masked = causal_mask(g, shifted, scores(p), math);
  const Uid probabilities = unary(g, CUDNN_POINTWISE_EXP, masked, scores(p), "P");

  const Uid probabilities_t = g.virtual_tensor(io, scores_transposed(p), "P^T");
  g.reshape(probabilities, probabilities_t, "P^T");
  g.matmul(probabilities_t, kGradOut, kGradV, "P^T dO");

  const Uid grad_p = g.virtual_tensor(CUDNN_DATA_FLOAT, scores(p), "dO V^T");
  g.matmul(kGradOut, kV, grad_p, "dO V^T");
  const Uid centered = binary(g, CUDNN_POINTWISE_SUB, grad_p, kRowDot, scores(p), "dP - sum(dO * O)");
  const Uid grad_s = binary(g, CUDNN_POINTWISE_MUL, centered, probabilities, scores(p), "dS");
  const Uid grad_s_scaled = binary(g, CUDNN_POINTWISE_MUL, grad_s, kScale, scores(p), "dS * scale");

  const Uid grad_s_t = g.virtual_tensor(io, scores_transposed(p), "dS^T");
  g.reshape(grad_s_scaled, grad_s_t, "dS^T");
  g.matmul(grad_s_t, kQ, kGradK, "dS^T Q");

  const Uid keys = g.virtual_tensor(CUDNN_DATA_FLOAT, bhtd(p, p.k), "K");
  g.reshape(kKTransposed, keys, "K");
  g.matmul(grad_s_scaled, keys, kGradQAccumulator, "dS K");
  g.pointwise(CUDNN_POINTWISE_IDENTITY, kGradQAccumulator, kNoTensor, kNoTensor, kGradQ, CUDNN_DATA_FLOAT, -1, "dQ");
}

}  // namespace dtrain::cuda::attention_graphs

#endif  // DTRAIN_WITH_CUDNN
