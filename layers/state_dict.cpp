#include "layers/state_dict.h"

namespace dtrain {

StateDict::StateDict(const std::map<std::string, Tensor>& tensors) {
  for (const auto& [name, tensor] : tensors) insert(name, tensor);
}

std::map<std::string, Tensor> StateDict::to_map() const {
  return std::map<std::string, Tensor>(entries_.begin(), entries_.end());
}

void StateDict::insert(std::string name, Tensor tensor) {
  if (contains(name)) fail("StateDict: the key '", name, "' is already present");
  index_.emplace(name, entries_.size());
  entries_.emplace_back(std::move(name), std::move(tensor));
}

const Tensor* StateDict::find(const std::string& name) const {
  auto found = index_.find(name);
  return found == index_.end() ? nullptr : &entries_[found->second].second;
}

const Tensor& StateDict::at(const std::string& name) const {
  const Tensor* tensor = find(name);
  if (tensor == nullptr) fail("StateDict: no key '", name, "' among ", entries_.size(), " entries");
  return *tensor;
}

std::vector<std::string> StateDict::keys() const {
  std::vector<std::string> names;
  names.reserve(entries_.size());
  for (const Entry& entry : entries_) names.push_back(entry.first);
  return names;
}

}  // namespace dtrain
