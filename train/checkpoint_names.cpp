#include "train/checkpoint_names.h"

#include <cstddef>
#include <string_view>
#include <unordered_map>

#include "core/error.h"

namespace dtrain::train {

bool has_prefix(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

std::string model_key(const std::string& name) { return kModelPrefix + name; }

std::string optimizer_state_key(const std::string& parameter, const std::string& state) {
  return kOptimizerStatePrefix + parameter + "." + state;
}

std::pair<std::string, std::string> split_optimizer_state_key(const std::string& key) {
  const std::string prefix = kOptimizerStatePrefix;
  if (!has_prefix(key, prefix)) return {};
  const size_t dot = key.rfind('.');
  if (dot <= prefix.size() || dot + 1 == key.size()) return {};
  return {key.substr(prefix.size(), dot - prefix.size()), key.substr(dot + 1)};
}

std::vector<std::string> optimizer_parameter_names(const Module& model, const optim::Optimizer& optimizer,
                                                   const std::string& who) {
  std::unordered_map<const TensorImpl*, std::string> names;
  for (const auto& [name, parameter] : model.named_parameters()) names.emplace(parameter.unsafe_impl(), name);
  std::vector<std::string> result;
  const std::vector<Tensor> parameters = optimizer.parameters();
  for (size_t i = 0; i < parameters.size(); ++i) {
    auto found = names.find(parameters[i].unsafe_impl());
    if (found == names.end()) {
      fail(who, ": the optimizer's parameter ", i, " ", parameters[i].shape(),
           " is not a parameter of the model, so its state has no name to be saved or loaded under (give the "
           "optimizer the model's parameters)");
    }
    result.push_back(found->second);
  }
  return result;
}

std::map<std::string, Tensor> named_optimizer_state(const optim::StateDict& by_index,
                                                    const std::vector<std::string>& names) {
  constexpr std::string_view kState = "state.";
  std::map<std::string, Tensor> named;
  for (const auto& [key, tensor] : by_index) {
    if (!has_prefix(key, std::string(kState))) {
      named.emplace(kOptimizerPrefix + key, tensor);  // param_groups.*
      continue;
    }
    // "state.<index>.<state name>"
    const size_t dot = key.find('.', kState.size());
    const size_t index = std::stoul(key.substr(kState.size(), dot - kState.size()));
    if (index >= names.size()) fail("named_optimizer_state: '", key, "' names parameter ", index, " of ", names.size());
    named.emplace(optimizer_state_key(names[index], key.substr(dot + 1)), tensor);
  }
  return named;
}

optim::StateDict indexed_optimizer_state(const std::map<std::string, Tensor>& named,
                                         const std::vector<std::string>& names, optim::StateDictProblems& problems) {
  std::map<std::string, size_t> index_of;
  for (size_t i = 0; i < names.size(); ++i) index_of.emplace(names[i], i);
  optim::StateDict by_index;
  for (const auto& [key, tensor] : named) {
    if (!has_prefix(key, kOptimizerPrefix)) continue;
    if (!has_prefix(key, kOptimizerStatePrefix)) {
      by_index.emplace(key.substr(std::string(kOptimizerPrefix).size()), tensor);
      continue;
    }
    const auto [parameter, state] = split_optimizer_state_key(key);
    auto found = index_of.find(parameter);
    if (found == index_of.end()) {
      problems.add("unexpected tensor '" + key + "' (optimizer state of a parameter '" + parameter +
                   "' that the optimizer does not have)");
      continue;
    }
    by_index.emplace(detail::concat("state.", found->second, ".", state), tensor);
  }
  return by_index;
}

StateDict model_weights(const std::map<std::string, Tensor>& tensors, const Module& model) {
  const StateDict own = model.state_dict();
  size_t prefixed_matches = 0, bare_matches = 0;
  for (const auto& [name, tensor] : own) {
    prefixed_matches += tensors.count(model_key(name));
    bare_matches += tensors.count(name);
  }
  if (bare_matches > prefixed_matches) return StateDict(tensors);
  std::map<std::string, Tensor> weights;
  for (const auto& [name, tensor] : tensors) {
    if (has_prefix(name, kOptimizerPrefix) || has_prefix(name, "loss_scaler.")) continue;
    const std::string weight = has_prefix(name, kModelPrefix) ? name.substr(std::string(kModelPrefix).size()) : name;
    if (!weights.emplace(weight, tensor).second) {
      fail("model weights: the file holds both '", weight, "' and '", model_key(weight),
           "' (a tensor under the old and the new name); keep one");
    }
  }
  return StateDict(weights);
}

}  // namespace dtrain::train
