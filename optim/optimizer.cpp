#include "optim/optimizer.h"

#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include "core/allocator.h"
#include "core/grad_mode.h"
#include "core/graph.h"
#include "core/ops/factory.h"

namespace dtrain::optim {

namespace {

std::string list_names(const HyperParameters& hyperparameters) {
  std::ostringstream names;
  const char* separator = "";
  for (const auto& [name, value] : hyperparameters) {
    names << separator << name;
    separator = ", ";
  }
  return names.str();
}

std::string group_prefix(size_t group) { return detail::concat("param_groups.", group, "."); }
std::string state_prefix(size_t index) { return detail::concat("state.", index, "."); }

std::string list_indices(const std::vector<int64_t>& indices) {
  std::ostringstream text;
  text << "[";
  for (size_t i = 0; i < indices.size(); ++i) text << (i ? ", " : "") << indices[i];
  text << "]";
  return text.str();
}

}  // namespace

double ParamGroup::get(const std::string& name) const {
  auto found = hyperparameters.find(name);
  if (found == hyperparameters.end()) {
    fail("param group: expected a hyper-parameter called '", name, "', the group has: ", list_names(hyperparameters));
  }
  return found->second;
}

Tensor zeros_as_optimizer_state(const Tensor& like) {
  MemoryTagScope tag(MemoryTag::OptimizerState);
  return zeros(like.shape(), {.dtype = like.dtype(), .device = like.device()});
}

Optimizer::Optimizer(std::string name, std::vector<ParamGroup> groups) : name_(std::move(name)), groups_(std::move(groups)) {
  std::map<const TensorImpl*, size_t> seen;  // parameter -> its index, to refuse repeats
  for (size_t g = 0; g < groups_.size(); ++g) {
    const ParamGroup& group = groups_[g];
    if (!group.names.empty() && group.names.size() != group.params.size()) {
      fail(name_, ": param group ", g, " has ", group.params.size(), " parameters but ", group.names.size(),
           " names (expected one name per parameter, or none)");
    }
    for (size_t i = 0; i < group.params.size(); ++i) {
      const Tensor& param = group.params[i];
      const size_t index = group_of_.size();
      if (!param.defined()) fail(name_, ": parameter ", index, " (group ", g, ") is an undefined tensor");
      if (!is_floating(param.dtype())) {
        fail(name_, ": parameter ", index, " must be a floating-point tensor, got dtype ", param.dtype());
      }
      if (!param.is_leaf()) {
        fail(name_, ": parameter ", index, " must be a leaf tensor (one no op produced), got the result of '",
             param.grad_fn()->name(), "' (use detach() to make a leaf)");
      }
      auto [earlier, inserted] = seen.emplace(param.unsafe_impl(), index);
      if (!inserted) {
        fail(name_, ": the same tensor is given twice, as parameter ", earlier->second, " and as parameter ", index,
             " (group ", g, "); each parameter may appear once across all groups");
      }
      group_of_.push_back(g);
    }
  }
  states_.resize(group_of_.size());
}

Optimizer::~Optimizer() = default;

void Optimizer::check_all_groups() const {
  for (size_t g = 0; g < groups_.size(); ++g) {
    try {
      check_hyperparameters(groups_[g].hyperparameters);
    } catch (const Error& error) {
      fail(name_, ": param group ", g, ": ", error.what());
    }
  }
}

std::string Optimizer::parameter_note(size_t index) const {
  const size_t g = group_of_[index];
  size_t position = 0;  // within its group: the earlier parameters of the same group
  for (size_t i = 0; i < index; ++i) position += group_of_[i] == g ? 1 : 0;
  const ParamGroup& group = groups_[g];
  return group.names.empty() ? std::string() : detail::concat(" (parameter '", group.names[position], "')");
}

std::string Optimizer::describe_parameter(size_t index) const {
  return detail::concat("parameter ", index, parameter_note(index));
}

void Optimizer::zero_grad() {
  for (ParamGroup& group : groups_) {
    for (Tensor& param : group.params) {
      if (param.grad().defined()) param.set_grad(Tensor());
    }
  }
}

void Optimizer::step() {
  NoGradGuard no_grad;
  size_t index = 0;
  for (const ParamGroup& group : groups_) {
    std::vector<PendingUpdate> updates;
    for (const Tensor& param : group.params) {
      ParameterState& state = states_[index];
      Tensor grad = param.grad();
      if (grad.defined()) {
        if (grad.device() != param.device()) {
          fail(name_, ".step: ", describe_parameter(index), " is on ", param.device(), " but its gradient is on ",
               grad.device());
        }
        updates.push_back({param, std::move(grad), &state});
      }
      ++index;
    }
    for (PendingUpdate& pending : updates) pending.state->step += 1;
    if (!updates.empty()) update_group(group, updates);
  }
}

void Optimizer::update_group(const ParamGroup& group, const std::vector<PendingUpdate>& updates) {
  for (const PendingUpdate& pending : updates) update(group, pending.param, pending.grad, *pending.state);
}

const ParamGroup& Optimizer::param_group(size_t group) const {
  if (group >= groups_.size()) fail(name_, ": expected a param group index below ", groups_.size(), ", got ", group);
  return groups_[group];
}

std::vector<Tensor> Optimizer::parameters() const {
  std::vector<Tensor> all;
  all.reserve(states_.size());
  for (const ParamGroup& group : groups_) all.insert(all.end(), group.params.begin(), group.params.end());
  return all;
}

double Optimizer::lr(size_t group) const { return param_group(group).get("lr"); }

void Optimizer::set_lr(double lr) {
  for (size_t g = 0; g < groups_.size(); ++g) set_lr(g, lr);
}

void Optimizer::set_lr(size_t group, double lr) { set_hyperparameter(group, "lr", lr); }

double Optimizer::hyperparameter(size_t group, const std::string& name) const { return param_group(group).get(name); }

void Optimizer::set_hyperparameter(size_t group, const std::string& name, double value) {
  HyperParameters changed = param_group(group).hyperparameters;
  auto found = changed.find(name);
  if (found == changed.end()) {
    fail(name_, ": no hyper-parameter called '", name, "'; expected one of: ", list_names(changed));
  }
  found->second = value;
  replace_hyperparameters(group, std::move(changed));
}

void Optimizer::replace_hyperparameters(size_t group, HyperParameters hyperparameters) {
  param_group(group);  // checks the index
  try {
    check_hyperparameters(hyperparameters);
  } catch (const Error& error) {
    fail(name_, ": param group ", group, ": ", error.what());
  }
  groups_[group].hyperparameters = std::move(hyperparameters);
}

const ParameterState& Optimizer::state(size_t parameter_index) const {
  if (parameter_index >= states_.size()) {
    fail(name_, ": expected a parameter index below ", states_.size(), ", got ", parameter_index);
  }
  return states_[parameter_index];
}

Tensor& Optimizer::state_tensor(ParameterState& state, const std::string& name, const Tensor& param) {
  auto found = state.tensors.find(name);
  if (found != state.tensors.end()) return found->second;
  return state.tensors.emplace(name, zeros_as_optimizer_state(param)).first->second;
}

StateDict Optimizer::state_dict() const {
  NoGradGuard no_grad;
  StateDict dict;
  size_t index = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const ParamGroup& group = groups_[g];
    std::vector<int64_t> indices;
    for (size_t i = 0; i < group.params.size(); ++i) indices.push_back(static_cast<int64_t>(index++));
    dict[group_prefix(g) + "params"] = from_vector(indices, Shape{static_cast<int64_t>(indices.size())}, {.dtype = kInt64});
    for (const auto& [name, value] : group.hyperparameters) dict[group_prefix(g) + name] = float64_scalar(value);
  }
  for (size_t i = 0; i < states_.size(); ++i) {
    const ParameterState& state = states_[i];
    if (state.step == 0 && state.tensors.empty()) continue;  // never updated: no entry, as PyTorch
    dict[state_prefix(i) + "step"] = int64_scalar(state.step);
    for (const auto& [name, tensor] : state.tensors) dict[state_prefix(i) + name] = tensor.clone();
  }
  return dict;
}

void Optimizer::load_state_dict(const StateDict& dict) {
  StateDictProblems problems;
  std::set<std::string> expected_keys;

  // Groups: the same partition of parameters, and every hyper-parameter this optimizer has.
  std::vector<HyperParameters> loaded(groups_.size());
  size_t index = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const ParamGroup& group = groups_[g];
    const std::string prefix = group_prefix(g);
    std::vector<int64_t> indices;
    for (size_t i = 0; i < group.params.size(); ++i) indices.push_back(static_cast<int64_t>(index++));
    const std::string params_key = prefix + "params";
    expected_keys.insert(params_key);
    auto found = dict.find(params_key);
    if (found == dict.end()) {
      problems.add(detail::concat("missing key '", params_key, "' (expected the parameter indices ",
                                  list_indices(indices), ")"));
    } else if (!found->second.defined() || found->second.dtype() != kInt64 || found->second.dim() != 1 ||
               found->second.to_vector<int64_t>() != indices) {
      const Tensor& got = found->second;
      problems.add(detail::concat("key '", params_key, "': expected the int64 parameter indices ", list_indices(indices),
                                  ", got ",
                                  got.defined() && got.dtype() == kInt64 && got.dim() == 1
                                      ? list_indices(got.to_vector<int64_t>())
                                      : (got.defined() ? detail::concat("dtype ", got.dtype(), " shape ", got.shape())
                                                       : std::string("an undefined tensor")),
                                  " (the optimizer's param groups differ from the saved ones)"));
    }
    loaded[g] = group.hyperparameters;
    for (auto& [name, value] : loaded[g]) {
      const std::string key = prefix + name;
      expected_keys.insert(key);
      if (std::optional<double> saved = problems.number(dict, key, kFloat64)) value = *saved;
    }
    try {
      check_hyperparameters(loaded[g]);
    } catch (const Error& error) {
      problems.add(detail::concat("'", prefix, "*': ", error.what()));
    }
  }

  // Per-parameter state: a parameter either has no keys (never updated) or all of them.
  std::vector<ParameterState> fresh(states_.size());
  std::vector<std::vector<std::string>> names_to_load(states_.size());
  const std::vector<Tensor> params = parameters();
  for (size_t i = 0; i < states_.size(); ++i) {
    const std::string prefix = state_prefix(i);
    auto first = dict.lower_bound(prefix);
    if (first == dict.end() || first->first.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string step_key = prefix + "step";
    expected_keys.insert(step_key);
    if (std::optional<double> step = problems.number(dict, step_key, kInt64)) {
      if (*step < 0) problems.add(detail::concat("key '", step_key, "': expected a step count >= 0, got ", *step));
      fresh[i].step = static_cast<int64_t>(*step);
    }
    for (const std::string& name : state_names(loaded[group_of_[i]])) {
      const std::string key = prefix + name;
      expected_keys.insert(key);
      if (problems.tensor(dict, key, params[i].shape(), params[i].dtype(), parameter_note(i))) {
        names_to_load[i].push_back(name);
      }
    }
  }

  for (const auto& [key, tensor] : dict) {
    if (expected_keys.count(key)) continue;
    std::string why;
    if (key.rfind("state.", 0) == 0) {
      why = detail::concat(" (this ", name_, " has ", states_.size(), " parameters, numbered 0 to ",
                           static_cast<int64_t>(states_.size()) - 1, ", and keeps no such state for them with these settings)");
    } else if (key.rfind("param_groups.", 0) == 0) {
      why = detail::concat(" (this ", name_, " has ", groups_.size(), " param groups with hyper-parameters: ",
                           groups_.empty() ? std::string() : list_names(groups_[0].hyperparameters), ")");
    }
    problems.add(detail::concat("unexpected key '", key, "'", why));
  }
  problems.raise_if_any(name_ + ".load_state_dict");

  // Everything fits: build the new state aside, then swap it in, so a failure cannot half-load.
  NoGradGuard no_grad;
  for (size_t i = 0; i < fresh.size(); ++i) {
    for (const std::string& name : names_to_load[i]) {
      Tensor tensor = zeros_as_optimizer_state(params[i]);
      tensor.copy_(dict.at(state_prefix(i) + name));
      fresh[i].tensors.emplace(name, std::move(tensor));
    }
  }
  for (size_t g = 0; g < groups_.size(); ++g) groups_[g].hyperparameters = std::move(loaded[g]);
  states_ = std::move(fresh);
}

}  // namespace dtrain::optim
