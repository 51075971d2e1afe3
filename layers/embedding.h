#pragma once
// Embedding: a lookup table of num_embeddings rows of embedding_dim values.
#include <cstdint>

#include "layers/module.h"

namespace dtrain {

// indices (Int64 or Int32, any shape) -> [*indices.shape, dim]: the rows of weight [num, dim].
Tensor embedding(const Tensor& indices, const Tensor& weight);

class Embedding : public Module {
 public:
  // Weight from N(0, 1), as PyTorch.
  Embedding(int64_t num_embeddings, int64_t embedding_dim);

  const Tensor& weight() const { return weight_; }  // [num_embeddings, embedding_dim]
  int64_t num_embeddings() const { return weight_.size(0); }
  int64_t embedding_dim() const { return weight_.size(1); }

 protected:
  Tensor forward(const Tensor& indices) override;

 private:
  Tensor weight_;
};

}  // namespace dtrain
