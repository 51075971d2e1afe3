#include "data/token_dataset.h"

#include <cstddef>
#include <utility>
#include <vector>

#include "core/ops/factory.h"

namespace dtrain {

TokenDataset::TokenDataset(Tokens tokens, int64_t context_length, int64_t stride)
    : tokens_(std::move(tokens)), context_length_(context_length), stride_(stride == 0 ? context_length : stride) {
  if (context_length_ < 1) fail("TokenDataset: expected a context length of at least 1, got ", context_length_);
  if (stride_ < 1) fail("TokenDataset: expected a positive stride (or 0 for the context length), got ", stride);
  auto count = static_cast<int64_t>(tokens_.size());
  // A window reads T + 1 tokens: T inputs and, shifted by one, T targets.
  if (count < context_length_ + 1) {
    fail("TokenDataset: expected at least ", context_length_ + 1, " tokens for one window of context length ",
         context_length_, ", got ", count);
  }
  windows_ = (count - context_length_ - 1) / stride_ + 1;
}

Example TokenDataset::get(int64_t index) const {
  Batch batch = get_batch({index});
  return Example{batch.inputs.select(0, 0), batch.targets.select(0, 0)};
}

Batch TokenDataset::get_batch(const std::vector<int64_t>& indices) const {
  auto rows = static_cast<int64_t>(indices.size());
  Tensor inputs = empty(Shape{rows, context_length_}, {.dtype = kInt64});
  Tensor targets = empty(Shape{rows, context_length_}, {.dtype = kInt64});
  int64_t* input = rows == 0 ? nullptr : inputs.data_ptr<int64_t>();
  int64_t* target = rows == 0 ? nullptr : targets.data_ptr<int64_t>();
  for (int64_t row = 0; row < rows; ++row) {
    int64_t index = indices[static_cast<size_t>(row)];
    check_index(index, "TokenDataset::get_batch");
    const int32_t* window = tokens_.data() + index * stride_;
    for (int64_t t = 0; t < context_length_; ++t) {
      input[row * context_length_ + t] = window[t];
      target[row * context_length_ + t] = window[t + 1];
    }
  }
  return Batch{inputs, targets};
}

}  // namespace dtrain
