#include "data/dataset.h"

#include <utility>

#include "data/collate.h"

namespace dtrain {

void Dataset::check_index(int64_t index, const char* who) const {
  if (index < 0 || index >= size()) fail(who, ": expected an example index in [0, ", size(), "), got ", index);
}

Batch Dataset::get_batch(const std::vector<int64_t>& indices) const {
  std::vector<Tensor> inputs, targets;
  inputs.reserve(indices.size());
  targets.reserve(indices.size());
  for (int64_t index : indices) {
    Example example = get(index);
    inputs.push_back(std::move(example.input));
    targets.push_back(std::move(example.target));
  }
  return Batch{stack_rows(inputs), stack_rows(targets)};
}

TensorDataset::TensorDataset(Tensor inputs, Tensor targets) : inputs_(std::move(inputs)), targets_(std::move(targets)) {
  check_defined(inputs_, "TensorDataset", "inputs");
  check_defined(targets_, "TensorDataset", "targets");
  if (inputs_.dim() == 0 || targets_.dim() == 0) {
    fail("TensorDataset: expected inputs and targets with a leading example dimension, got shapes ", inputs_.shape(),
         " and ", targets_.shape());
  }
  if (inputs_.size(0) != targets_.size(0)) {
    fail("TensorDataset: expected as many targets as inputs, got inputs of shape ", inputs_.shape(), " and targets of shape ",
         targets_.shape());
  }
}

int64_t TensorDataset::size() const { return inputs_.size(0); }

Example TensorDataset::get(int64_t index) const {
  check_index(index, "TensorDataset::get");
  return Example{inputs_.select(0, index), targets_.select(0, index)};
}

Batch TensorDataset::get_batch(const std::vector<int64_t>& indices) const {
  return Batch{gather_rows(inputs_, indices), gather_rows(targets_, indices)};
}

}  // namespace dtrain
