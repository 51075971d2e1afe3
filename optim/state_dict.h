#pragma once
// The flat dictionary optimizers and loss scalers save and load: stable string keys
// ("state.3.exp_avg", "param_groups.0.lr") to tensors, so it can be written with safetensors as
// it is. Numbers are 0-d tensors: hyper-parameters float64, counts int64.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace dtrain::optim {

using StateDict = std::map<std::string, Tensor>;

Tensor float64_scalar(double value);
Tensor int64_scalar(int64_t value);

// Collects every problem found while checking a state dict, so that one error lists them all
// (a user fixing a checkpoint wants the whole list, not one problem per attempt).
class StateDictProblems {
 public:
  void add(std::string problem) { problems_.push_back(std::move(problem)); }
  bool empty() const { return problems_.empty(); }
  // Raises one dtrain::Error listing every problem, headed by what was being loaded.
  void raise_if_any(const std::string& what) const;

  // The value of a one-element tensor of dtype under key; records a problem (and returns
  // nothing) when the key is missing or holds something else.
  std::optional<double> number(const StateDict& dict, const std::string& key, DType dtype);
  // Whether key holds a tensor of exactly this shape and dtype; records a problem if not.
  // note (such as " (parameter 'fc.weight')") follows the key in the message.
  bool tensor(const StateDict& dict, const std::string& key, const Shape& shape, DType dtype,
              const std::string& note = "");

 private:
  std::vector<std::string> problems_;
};

}  // namespace dtrain::optim
