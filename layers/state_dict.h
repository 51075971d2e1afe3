#pragma once
// StateDict: tensors by name in insertion order. A module's state_dict lists its parameters and
// buffers in registration order, so two runs (and every rank) write and read the same sequence.
#include <cstddef>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace dtrain {

class StateDict {
 public:
  using Entry = std::pair<std::string, Tensor>;

  StateDict() = default;
  // From the sorted map that safetensors loads (load_safetensors(path).tensors), in its order.
  StateDict(const std::map<std::string, Tensor>& tensors);  // NOLINT: implicit, so a loaded file passes as is
  // The sorted map that save_safetensors takes.
  std::map<std::string, Tensor> to_map() const;

  // Adds name at the end; raises if the name is already present.
  void insert(std::string name, Tensor tensor);
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  // The tensor under name, or null when absent.
  const Tensor* find(const std::string& name) const;
  // The tensor under name; raises naming the key when absent.
  const Tensor& at(const std::string& name) const;
  std::vector<std::string> keys() const;

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  std::vector<Entry>::const_iterator begin() const { return entries_.begin(); }
  std::vector<Entry>::const_iterator end() const { return entries_.end(); }

 private:
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace dtrain
