#pragma once
// The one naming of saved training state, shared by every file dtrain writes — a single-file
// checkpoint (train/checkpoint.h), a sharded one (dist/checkpoint/, dist/zero/) and a
// consolidated one (dtrain-consolidate):
//   "model.<parameter or buffer name>"               the model's state dict
//   "optimizer.state.<parameter name>.<state name>"  per-parameter state (exp_avg, step, ...)
//   "optimizer.param_groups.<group>.<name>"          hyper-parameters; ".params": the group's
//                                                    parameter indices
// Optimizer state is keyed by the model's name of the parameter, not by the optimizer's index
// ("state.3.exp_avg" in optim::Optimizer::state_dict), so the same state has the same key
// whatever holds it, and survives any re-partitioning. Older files still load: single-file
// checkpoints of format v1 keyed the optimizer by index, and consolidated weights files had no
// "model." prefix (model_weights reads both).
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "layers/module.h"
#include "optim/optimizer.h"
#include "optim/state_dict.h"

namespace dtrain::train {

inline constexpr const char* kModelPrefix = "model.";
inline constexpr const char* kOptimizerPrefix = "optimizer.";
inline constexpr const char* kOptimizerStatePrefix = "optimizer.state.";
inline constexpr const char* kParamGroupsPrefix = "optimizer.param_groups.";

bool has_prefix(const std::string& text, const std::string& prefix);

// "model.<name>"
std::string model_key(const std::string& name);
// "optimizer.state.<parameter>.<state>"
std::string optimizer_state_key(const std::string& parameter, const std::string& state);
// A key under "optimizer.state." split into the parameter's name and the state's name (parameter
// names have dots, state names none); both empty when key is not of that form.
std::pair<std::string, std::string> split_optimizer_state_key(const std::string& key);

// The model's name (named_parameters) of each of the optimizer's parameters, by optimizer index.
// Raises, headed by who, when one is not a parameter of the model (its state would have no name).
std::vector<std::string> optimizer_parameter_names(const Module& model, const optim::Optimizer& optimizer,
                                                   const std::string& who);

// The optimizer's state dict under the names above: "param_groups.*" -> "optimizer.param_groups.*",
// "state.<i>.<state>" -> "optimizer.state.<names[i]>.<state>".
std::map<std::string, Tensor> named_optimizer_state(const optim::StateDict& by_index,
                                                    const std::vector<std::string>& names);

// The inverse, for Optimizer::load_state_dict: every "optimizer.*" key of named back to the
// optimizer's own keys. A state key whose parameter is not in names is reported to problems
// (and left out); keys outside "optimizer." are ignored.
optim::StateDict indexed_optimizer_state(const std::map<std::string, Tensor>& named,
                                         const std::vector<std::string>& names, optim::StateDictProblems& problems);

// The model's weights from a weights-only file of either naming — "model.<name>" (a consolidated
// checkpoint, dtrain-convert, a training checkpoint's model part) or bare names (a consolidated
// file written before the one naming, a PyTorch state_dict) — as Module::load_state_dict takes
// them. The reading that matches more of model's state dict wins (the prefixed one on a tie), so
// a model whose own names begin with "model." still loads; with the prefixed reading, the
// "optimizer.*" and "loss_scaler.*" tensors are left out and anything else stays, to be reported
// as unexpected.
StateDict model_weights(const std::map<std::string, Tensor>& tensors, const Module& model);

}  // namespace dtrain::train
