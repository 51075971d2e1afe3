#pragma once
// TokenDataset: a token stream cut into training windows for next-token prediction. Example i
// is the window at i * stride: input = tokens[s, s + T), target = tokens[s + 1, s + T + 1),
// both int64 of shape [T] (batches [B, T]).
#include <cstdint>
#include <vector>

#include "data/dataset.h"
#include "data/tokens.h"

namespace dtrain {

class TokenDataset : public Dataset {
 public:
  // stride 0 means context_length: windows side by side, every token a target once.
  TokenDataset(Tokens tokens, int64_t context_length, int64_t stride = 0);

  int64_t size() const override { return windows_; }
  Example get(int64_t index) const override;
  Batch get_batch(const std::vector<int64_t>& indices) const override;

  int64_t context_length() const { return context_length_; }
  int64_t stride() const { return stride_; }
  const Tokens& tokens() const { return tokens_; }

 private:
  Tokens tokens_;
  int64_t context_length_;
  int64_t stride_;
  int64_t windows_ = 0;
};

}  // namespace dtrain
