#include "dist/checkpoint/whole_state.h"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <map>
#include <string>
#include <utility>

#include "core/error.h"
#include "core/grad_mode.h"
#include "core/ops/factory.h"
#include "dist/checkpoint/rank_agreement.h"
#include "optim/state_dict.h"
#include "train/checkpoint_names.h"

namespace dtrain::dist {

namespace {

using train::has_prefix;
using train::kModelPrefix;
using train::kOptimizerPrefix;
using train::kOptimizerStatePrefix;
using train::kParamGroupsPrefix;

// Appends the part-th of `parts` runs of whole (any shape) under name.
void add_part(std::vector<TensorFragment>& fragments, const std::string& name, const Tensor& whole, int part,
              int parts) {
  const int64_t numel = whole.numel();
  const int64_t begin = numel * part / parts;
  const int64_t end = numel * (part + 1) / parts;
  // An empty tensor is still declared once (by part 0), so the index knows its shape.
  if (begin == end && !(numel == 0 && part == 0)) return;
  NoGradGuard no_grad;
  Tensor flat = whole.is_contiguous() ? whole.view({numel}) : whole.reshape({numel});
  fragments.push_back({name, whole.shape(), begin, flat.narrow(0, begin, end - begin)});
}

std::string describe(const Shape& shape, DType dtype) { return detail::concat(shape, " ", dtype_name(dtype)); }

// Whether a saved tensor of dtype `saved` may load into one of dtype `target`.
bool convertible(DType saved, DType target) { return saved == target || (is_floating(saved) && is_floating(target)); }

// Everything load_whole_state will load, read and checked, not yet applied.
struct StagedState {
  StateDict model;
  optim::StateDict optimizer;
};

StagedState stage(const ShardedCheckpoint& checkpoint, const Module& model, const optim::Optimizer& optimizer,
                  const std::string& where) {
  optim::StateDictProblems problems;
  StagedState staged;
  const StateDict own = model.state_dict();
  const std::vector<std::string> names = train::optimizer_parameter_names(model, optimizer, where);
  std::map<std::string, size_t> index_of;
  for (size_t i = 0; i < names.size(); ++i) index_of.emplace(names[i], i);
  const std::vector<Tensor> parameters = optimizer.parameters();

  // The model: every tensor of its state dict, nothing more.
  for (const auto& [name, target] : own) {
    const std::string key = train::model_key(name);
    if (!checkpoint.contains(key)) {
      problems.add("missing tensor '" + key + "' (the model's " + describe(target.shape(), target.dtype()) + ")");
    } else if (checkpoint.shape(key) != target.shape() || !convertible(checkpoint.dtype(key), target.dtype())) {
      problems.add("tensor '" + key + "' is " + describe(checkpoint.shape(key), checkpoint.dtype(key)) +
                   " in the checkpoint, but the model's is " + describe(target.shape(), target.dtype()));
    }
  }
  for (const std::string& key : checkpoint.names()) {
    if (has_prefix(key, kModelPrefix)) {
      if (!own.contains(key.substr(std::string(kModelPrefix).size()))) {
        problems.add("unexpected tensor '" + key + "' " + describe(checkpoint.shape(key), checkpoint.dtype(key)) +
                     " (the model has no such parameter or buffer)");
      }
    } else if (has_prefix(key, kOptimizerStatePrefix)) {
      const std::string parameter = train::split_optimizer_state_key(key).first;
      if (!index_of.contains(parameter)) {
        problems.add("unexpected tensor '" + key + "' (optimizer state of a parameter '" + parameter +
                     "' that the optimizer does not have)");
      }
    } else if (has_prefix(key, kOptimizerPrefix) && !has_prefix(key, kParamGroupsPrefix)) {
      problems.add("unexpected tensor '" + key + "' (the optimizer keeps only 'state.*' and 'param_groups.*')");
    }
    // Anything else ("loss_scaler.*" of a mixed-precision ZeRO run) is not the model's or the
    // optimizer's: left to the caller (checkpoint.read).
  }
  problems.raise_if_any(where);

  // Every check that needs no data passed: read. A bad shard file raises here, naming itself.
  NoGradGuard no_grad;
  StateDict loaded;
  for (const auto& [name, target] : own) {
    Tensor value = checkpoint.read(train::model_key(name));
    if (value.dtype() != target.dtype()) value = value.to(target.dtype());
    loaded.insert(name, value);
  }
  staged.model = std::move(loaded);
  for (const std::string& key : checkpoint.names()) {
    if (has_prefix(key, kParamGroupsPrefix)) {
      staged.optimizer.emplace(key.substr(std::string(kOptimizerPrefix).size()), checkpoint.read(key));
    } else if (has_prefix(key, kOptimizerStatePrefix)) {
      const auto [parameter, state_name] = train::split_optimizer_state_key(key);
      const size_t index = index_of.at(parameter);
      Tensor value = checkpoint.read(key);
      // State shaped as its parameter follows the parameter's dtype (the step count stays int64).
      if (state_name != "step" && value.dtype() != parameters[index].dtype() &&
          convertible(value.dtype(), parameters[index].dtype())) {
        value = value.to(parameters[index].dtype());
      }
      staged.optimizer.emplace(detail::concat("state.", index, ".", state_name), value);
    }
  }
  return staged;
}

}  // namespace

std::vector<TensorFragment> whole_state_fragments(const Module& model, const optim::Optimizer& optimizer, int part,
                                                  int parts) {
  if (parts < 1 || part < 0 || part >= parts)
    fail("whole_state_fragments: expected 0 <= part < parts, got part ", part, " of ", parts);
  std::vector<TensorFragment> fragments;
  for (const auto& [name, tensor] : model.state_dict())
    add_part(fragments, train::model_key(name), tensor, part, parts);

  const std::vector<std::string> names = train::optimizer_parameter_names(model, optimizer, "whole_state_fragments");
  size_t index = 0;
  for (size_t g = 0; g < optimizer.num_param_groups(); ++g) {
    const optim::ParamGroup& group = optimizer.param_group(g);
    const std::string prefix = detail::concat(kParamGroupsPrefix, g, ".");
    std::vector<int64_t> indices;
    for (size_t i = 0; i < group.params.size(); ++i) indices.push_back(static_cast<int64_t>(index++));
    add_part(fragments, prefix + "params", from_vector(indices), part, parts);
    for (const auto& [name, value] : group.hyperparameters)
      add_part(fragments, prefix + name, optim::float64_scalar(value), part, parts);
  }
  for (size_t i = 0; i < optimizer.num_parameters(); ++i) {
    const optim::ParameterState& state = optimizer.state(i);
    if (state.step == 0 && state.tensors.empty()) continue;  // never updated: no state, as in its state_dict
    add_part(fragments, train::optimizer_state_key(names[i], "step"), optim::int64_scalar(state.step), part, parts);
    for (const auto& [name, tensor] : state.tensors)
      add_part(fragments, train::optimizer_state_key(names[i], name), tensor, part, parts);
  }
  return fragments;
}

void save_whole_state(const std::filesystem::path& dir, const Module& model, const optim::Optimizer& optimizer,
                      const train::TrainingState& state, ProcessGroup* group, const ShardedSaveOptions& options) {
  std::vector<TensorFragment> fragments;
  std::string error;
  try {
    fragments = whole_state_fragments(model, optimizer, group ? group->rank() : 0, group ? group->size() : 1);
  } catch (const std::exception& raised) {
    error = error_text(raised);
  }
  raise_if_any_rank_failed(group, "save_whole_state('" + dir.string() + "')", error);
  save_sharded_checkpoint(dir, fragments, state, group, options);
}

void load_whole_state(const ShardedCheckpoint& checkpoint, Module& model, optim::Optimizer& optimizer,
                      ProcessGroup* group) {
  const std::filesystem::path index = checkpoint.directory() / kCheckpointIndexFileName;
  const std::string where = "sharded checkpoint '" + index.string() + "'";
  StagedState staged;
  agree_on_errors(group, "load_whole_state", [&] { staged = stage(checkpoint, model, optimizer, where); });
  // The optimizer checks its whole state dict before it changes anything; the model's tensors
  // were checked above, so once the optimizer has loaded, the model's load cannot fail.
  agree_on_errors(group, "load_whole_state", [&] {
    try {
      optimizer.load_state_dict(staged.optimizer);
    } catch (const Error& raised) {
      fail(where, " (optimizer): ", error_text(raised));
    }
  });
  model.load_state_dict(staged.model);
}

}  // namespace dtrain::dist
