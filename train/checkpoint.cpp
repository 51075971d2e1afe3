#include "train/checkpoint.h"

#include <map>
#include <string>

#include "core/error.h"
#include "core/safetensors.h"
#include "optim/state_dict.h"
#include "train/checkpoint_metadata.h"

namespace dtrain::train {

namespace {

constexpr const char* kModelPrefix = "model.";
constexpr const char* kOptimizerPrefix = "optimizer.";

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

// The file's tensors split by prefix; any other name is a problem.
struct CheckpointTensors {
  std::map<std::string, Tensor> model;
  optim::StateDict optimizer;
};

CheckpointTensors split_tensors(const std::map<std::string, Tensor>& tensors, const std::string& where) {
  CheckpointTensors split;
  optim::StateDictProblems problems;
  for (const auto& [name, tensor] : tensors) {
    if (starts_with(name, kModelPrefix)) {
      split.model.emplace(name.substr(std::string(kModelPrefix).size()), tensor);
    } else if (starts_with(name, kOptimizerPrefix)) {
      split.optimizer.emplace(name.substr(std::string(kOptimizerPrefix).size()), tensor);
    } else {
      problems.add("tensor '" + name + "' is neither 'model.*' nor 'optimizer.*'");
    }
  }
  problems.raise_if_any(where);
  return split;
}

// The same checks Module::load_state_dict makes, made first so that the optimizer is not loaded
// when the model then would not be. tensors: the whole file, names with their prefixes.
void check_model_tensors(const Module& model, const std::map<std::string, Tensor>& tensors, const std::string& where) {
  optim::StateDictProblems problems;
  StateDict own = model.state_dict();
  for (const auto& [name, tensor] : own) problems.tensor(tensors, kModelPrefix + name, tensor.shape(), tensor.dtype());
  for (const auto& [name, tensor] : tensors) {
    if (starts_with(name, kModelPrefix) && !own.contains(name.substr(std::string(kModelPrefix).size()))) {
      problems.add("unexpected key '" + name + "' (the model has no such parameter or buffer)");
    }
  }
  problems.raise_if_any(where + " (model)");
}

}  // namespace

void save_checkpoint(const std::filesystem::path& path, const Module& model, const optim::Optimizer& optimizer,
                     const TrainingState& state) {
  std::map<std::string, Tensor> tensors;
  for (const auto& [name, tensor] : model.state_dict()) tensors.emplace(kModelPrefix + name, tensor);
  for (const auto& [key, tensor] : optimizer.state_dict()) tensors.emplace(kOptimizerPrefix + key, tensor);
  save_safetensors(path, tensors, encode_checkpoint_metadata(state, optimizer.name()));
}

TrainingState load_checkpoint(const std::filesystem::path& path, Module& model, optim::Optimizer& optimizer) {
  const std::string where = "load_checkpoint: '" + path.string() + "'";
  SafetensorsFile file = load_safetensors(path);  // validates the whole file, or raises naming it

  std::string saved_optimizer;
  TrainingState state = decode_checkpoint_metadata(file.metadata, path, saved_optimizer);
  state.verified = file.verified;
  if (saved_optimizer != optimizer.name()) {
    fail(where, ": the checkpoint holds ", saved_optimizer, " state, but the optimizer is ", optimizer.name());
  }
  CheckpointTensors tensors = split_tensors(file.tensors, where);
  check_model_tensors(model, file.tensors, where);

  // The optimizer checks everything before it changes anything; the model's tensors were
  // checked above, so once the optimizer has loaded, the model's load cannot fail.
  try {
    optimizer.load_state_dict(tensors.optimizer);
  } catch (const Error& error) {
    fail(where, " (optimizer): ", error.what());
  }
  model.load_state_dict(StateDict(tensors.model));
  return state;
}

}  // namespace dtrain::train
