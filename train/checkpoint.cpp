#include "train/checkpoint.h"

#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/safetensors.h"
#include "optim/state_dict.h"
#include "train/checkpoint_metadata.h"
#include "train/checkpoint_names.h"

namespace dtrain::train {

namespace {

// Every tensor is the model's or the optimizer's; any other name is a problem.
void check_prefixes(const std::map<std::string, Tensor>& tensors, optim::StateDictProblems& problems) {
  for (const auto& [name, tensor] : tensors) {
    if (!has_prefix(name, kModelPrefix) && !has_prefix(name, kOptimizerPrefix)) {
      problems.add("tensor '" + name + "' is neither 'model.*' nor 'optimizer.*'");
    }
  }
}

// The optimizer's state dict from the file: format v1 keyed state by the optimizer's parameter
// index ("optimizer.state.0.exp_avg": the state dict's own keys), v2 by the parameter's name.
optim::StateDict optimizer_state(const std::map<std::string, Tensor>& tensors, const std::string& format,
                                 const std::vector<std::string>& names, optim::StateDictProblems& problems) {
  if (format != kCheckpointFormatV1) return indexed_optimizer_state(tensors, names, problems);
  optim::StateDict by_index;
  for (const auto& [name, tensor] : tensors) {
    if (has_prefix(name, kOptimizerPrefix)) by_index.emplace(name.substr(std::string(kOptimizerPrefix).size()), tensor);
  }
  return by_index;
}

// The same checks Module::load_state_dict makes, made first so that the optimizer is not loaded
// when the model then would not be. tensors: the whole file, names with their prefixes.
void check_model_tensors(const Module& model, const std::map<std::string, Tensor>& tensors, const std::string& where) {
  optim::StateDictProblems problems;
  StateDict own = model.state_dict();
  for (const auto& [name, tensor] : own) problems.tensor(tensors, model_key(name), tensor.shape(), tensor.dtype());
  for (const auto& [name, tensor] : tensors) {
    if (has_prefix(name, kModelPrefix) && !own.contains(name.substr(std::string(kModelPrefix).size()))) {
      problems.add("unexpected key '" + name + "' (the model has no such parameter or buffer)");
    }
  }
  problems.raise_if_any(where + " (model)");
}

StateDict model_tensors(const std::map<std::string, Tensor>& tensors) {
  std::map<std::string, Tensor> model;
  for (const auto& [name, tensor] : tensors) {
    if (has_prefix(name, kModelPrefix)) model.emplace(name.substr(std::string(kModelPrefix).size()), tensor);
  }
  return StateDict(model);
}

}  // namespace

void save_checkpoint(const std::filesystem::path& path, const Module& model, const optim::Optimizer& optimizer,
                     const TrainingState& state) {
  std::map<std::string, Tensor> tensors =
      named_optimizer_state(optimizer.state_dict(), optimizer_parameter_names(model, optimizer, "save_checkpoint"));
  for (const auto& [name, tensor] : model.state_dict()) tensors.emplace(model_key(name), tensor);
  save_safetensors(path, tensors, encode_checkpoint_metadata(state, optimizer.name()));
}

TrainingState load_checkpoint(const std::filesystem::path& path, Module& model, optim::Optimizer& optimizer) {
  const std::string where = "load_checkpoint: '" + path.string() + "'";
  SafetensorsFile file = load_safetensors(path);  // validates the whole file, or raises naming it

  std::string saved_optimizer, format;
  TrainingState state = decode_checkpoint_metadata(file.metadata, path, saved_optimizer, &format);
  state.verified = file.verified;
  if (saved_optimizer != optimizer.name()) {
    fail(where, ": the checkpoint holds ", saved_optimizer, " state, but the optimizer is ", optimizer.name());
  }
  optim::StateDictProblems problems;
  check_prefixes(file.tensors, problems);
  const optim::StateDict optimizer_dict =
      optimizer_state(file.tensors, format, optimizer_parameter_names(model, optimizer, where), problems);
  problems.raise_if_any(where);
  check_model_tensors(model, file.tensors, where);

  // The optimizer checks everything before it changes anything; the model's tensors were
  // checked above, so once the optimizer has loaded, the model's load cannot fail.
  try {
    optimizer.load_state_dict(optimizer_dict);
  } catch (const Error& error) {
    fail(where, " (optimizer): ", error.what());
  }
  model.load_state_dict(model_tensors(file.tensors));
  return state;
}

}  // namespace dtrain::train
