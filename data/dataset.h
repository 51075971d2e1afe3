#pragma once
// Dataset: N examples, each an (input, target) pair of tensors, readable one at a time or as a
// batch. A DataLoader draws batches from it in the order a Sampler gives.
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace dtrain {

struct Example {
  Tensor input;
  Tensor target;
};

// A batch: the examples' tensors stacked along a new leading dimension.
struct Batch {
  Tensor inputs;
  Tensor targets;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual Example get(int64_t index) const = 0;
  // The examples at indices, stacked. The default stacks get(i); datasets that hold their data
  // in one tensor override it to copy rows directly.
  virtual Batch get_batch(const std::vector<int64_t>& indices) const;

 protected:
  // Raises unless 0 <= index < size(), naming who asked.
  void check_index(int64_t index, const char* who) const;
};

// Examples are the rows (first dimension) of two tensors of equal length.
class TensorDataset : public Dataset {
 public:
  TensorDataset(Tensor inputs, Tensor targets);

  int64_t size() const override;
  Example get(int64_t index) const override;  // views of row index
  Batch get_batch(const std::vector<int64_t>& indices) const override;

  const Tensor& inputs() const { return inputs_; }
  const Tensor& targets() const { return targets_; }

 private:
  Tensor inputs_;
  Tensor targets_;
};

}  // namespace dtrain
