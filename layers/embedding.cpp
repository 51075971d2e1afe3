#include "layers/embedding.h"

#include "core/ops/index.h"
#include "core/ops/view.h"
#include "layers/init.h"

namespace dtrain {

Tensor embedding(const Tensor& indices, const Tensor& weight) {
  check_defined(indices, "embedding", "indices");
  check_defined(weight, "embedding", "weight");
  if (!is_integral(indices.dtype())) fail("embedding: expected Int64 or Int32 indices, got ", indices.dtype());
  if (weight.dim() != 2) fail("embedding: expected a 2-d weight [num, dim], got shape ", weight.shape());
  Shape output_shape = indices.shape();
  output_shape.push_back(weight.size(1));
  return index_select(weight, 0, reshape(indices, {-1})).view(output_shape);
}

Embedding::Embedding(int64_t num_embeddings, int64_t embedding_dim) : Module("Embedding") {
  if (num_embeddings <= 0 || embedding_dim <= 0) {
    fail("Embedding: expected positive sizes, got num_embeddings ", num_embeddings, " and embedding_dim ",
         embedding_dim);
  }
  weight_ = register_parameter("weight", normal_parameter({num_embeddings, embedding_dim}, 0.0, 1.0));
}

Tensor Embedding::forward(const Tensor& indices) { return embedding(indices, weight_); }

}  // namespace dtrain
