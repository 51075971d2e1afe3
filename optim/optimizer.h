#pragma once
// Optimizer: the base of SGD, Adam and AdamW. It owns the parameter groups (each with its own
// hyper-parameters), one state per parameter (a step count and named tensors such as
// "exp_avg"), zero_grad(), step() and the flat state dict. Subclasses supply only the update
// rule of one parameter and the names of the state it keeps.
//
// Parameters are plain Tensors (a Module's parameters() or a ZeRO shard), so optim/ does not
// depend on how they were registered. Parameters are numbered across groups in order, and that
// number is their key in the state dict ("state.<index>.exp_avg"), as in PyTorch.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "optim/state_dict.h"

namespace dtrain::optim {

// A group's hyper-parameters by name ("lr", "weight_decay", "beta1", ...); flags are 0 or 1.
// Named numbers rather than a struct, so the base class can save, load and schedule the
// hyper-parameters of any optimizer. Each optimizer also offers its typed options(group).
using HyperParameters = std::map<std::string, double>;

struct ParamGroup {
  std::vector<Tensor> params;
  std::vector<std::string> names;  // empty, or one name per parameter (used in error messages)
  HyperParameters hyperparameters;

  // The hyper-parameter called name; raises naming it and the ones this group has.
  double get(const std::string& name) const;
};

// How a caller asks for one group of a typed optimizer:
//   AdamW({{.params = decay, .options = {.weight_decay = 0.1}},
//          {.params = no_decay, .options = {.weight_decay = 0.0}}});
template <typename Options>
struct ParamGroupOptions {
  std::vector<Tensor> params;
  Options options = {};
  // Spelled as a sized construction: with "= {}" g++ 12 crashes (ICE in nothrow_spec_p) when
  // a braced list of groups meets the optimizers' constructors; without an initializer
  // -Wextra warns wherever names is left out.
  std::vector<std::string> names = std::vector<std::string>(0);
};

struct ParameterState {
  int64_t step = 0;                       // updates applied to this parameter so far
  std::map<std::string, Tensor> tensors;  // "exp_avg", "exp_avg_sq", "momentum_buffer", ...
};

class Optimizer {
 public:
  virtual ~Optimizer();
  // Copies would share state tensors (Tensors are handles), so optimizers are move-only.
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;
  Optimizer(Optimizer&&) = default;
  Optimizer& operator=(Optimizer&&) = default;

  const std::string& name() const { return name_; }

  // Sets every parameter's gradient to undefined (PyTorch's set_to_none=True): the next backward
  // writes fresh gradients instead of adding to zeros, and no memory is held in between.
  void zero_grad();
  // Updates every parameter that has a gradient (those without one are skipped, their state
  // untouched), under NoGradGuard.
  void step();

  size_t num_param_groups() const { return groups_.size(); }
  const ParamGroup& param_group(size_t group) const;
  // Every parameter, group after group: position i is "state.<i>" in the state dict.
  std::vector<Tensor> parameters() const;
  size_t num_parameters() const { return states_.size(); }

  // The learning rate is the one hyper-parameter every optimizer has; schedules set it.
  double lr(size_t group = 0) const;
  void set_lr(double lr);  // every group
  void set_lr(size_t group, double lr);
  double hyperparameter(size_t group, const std::string& name) const;
  // Changes one hyper-parameter of one group; raises for an unknown name or an invalid value.
  void set_hyperparameter(size_t group, const std::string& name, double value);

  const ParameterState& state(size_t parameter_index) const;

  // A snapshot (copies) of the state: "param_groups.<g>.<hyper-parameter>" (float64, 0-d),
  // "param_groups.<g>.params" (int64, the parameter indices of group g), "state.<i>.step"
  // (int64, 0-d) and "state.<i>.<name>" (the state tensors, shaped and typed as parameter i).
  // Parameters that were never updated have no "state.<i>" keys, as in PyTorch.
  StateDict state_dict() const;
  // Replaces hyper-parameters and state with the dict's. Every key, shape and dtype is checked
  // first and all problems are reported in one dtrain::Error; on error nothing is changed.
  void load_state_dict(const StateDict& dict);

  // Whether updates may run as one fused loop over contiguous float32/float64 CPU tensors
  // (default). Off forces the generic tensor-op path that other devices use; the math is the
  // same, and tests compare the two.
  void set_fused(bool fused) { fused_ = fused; }
  bool fused() const { return fused_; }

 protected:
  Optimizer(std::string name, std::vector<ParamGroup> groups);

  // Applies one update to param from grad. state.step is already counted for this update (it
  // is 1 on the first). Runs under NoGradGuard.
  virtual void update(const ParamGroup& group, const Tensor& param, const Tensor& grad, ParameterState& state) = 0;
  // One parameter of a group's step, its state's step already counted.
  struct PendingUpdate {
    Tensor param;
    Tensor grad;
    ParameterState* state;
  };
  // Applies one step to every parameter of a group that has a gradient. The default calls update()
  // for each in order; an optimizer with a multi-tensor kernel overrides it to update them
  // together (AdamFamily: one kernel launch per device and step count).
  virtual void update_group(const ParamGroup& group, const std::vector<PendingUpdate>& updates);
  // The names of the tensors a parameter's state holds once it has been updated, given its
  // group's hyper-parameters (what load_state_dict expects to find).
  virtual std::vector<std::string> state_names(const HyperParameters& hyperparameters) const = 0;
  // Raises a dtrain::Error naming a missing or invalid hyper-parameter.
  virtual void check_hyperparameters(const HyperParameters& hyperparameters) const = 0;

  // Subclass constructors call this once their object is complete (virtual calls then reach them).
  void check_all_groups() const;
  void replace_hyperparameters(size_t group, HyperParameters hyperparameters);

  // The state tensor called name, created on first use as zeros shaped like param. It is
  // allocated under MemoryTag::OptimizerState, since ZeRO's memory claims are checked against
  // that counter.
  static Tensor& state_tensor(ParameterState& state, const std::string& name, const Tensor& param);

 private:
  std::string describe_parameter(size_t index) const;  // "parameter 3 ('fc.weight')"
  std::string parameter_note(size_t index) const;      // " (parameter 'fc.weight')", or empty

  std::string name_;
  std::vector<ParamGroup> groups_;
  std::vector<ParameterState> states_;  // by parameter index
  std::vector<size_t> group_of_;        // by parameter index
  bool fused_ = true;
};

// zeros shaped, typed and placed like like, counted as optimizer state.
Tensor zeros_as_optimizer_state(const Tensor& like);

}  // namespace dtrain::optim
