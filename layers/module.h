#pragma once
// Module: the base of every layer and model. It owns named parameters, buffers and child
// modules (held by std::shared_ptr, so a block can be shared and passed around), gives them
// hierarchical names ("blocks.3.attn.qkv.weight") in registration order, and runs forward
// through operator() so that hooks always fire. The hooks are the seams distributed training
// uses (ZeRO-3 gathers a module's parameters before its forward and before its backward, and
// frees them after) without any layer knowing about it.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "layers/state_dict.h"

namespace dtrain {

class Module;

using NamedTensor = std::pair<std::string, Tensor>;
using NamedModule = std::pair<std::string, Module*>;
// A module's settings as (name, value) text pairs, value in its shortest exact form
// (setting_text): {{"heads", "4"}, {"dropout", "0.1"}}.
using ModuleSettings = std::vector<std::pair<std::string, std::string>>;

// A setting's value as text: integers in decimal, floating values in the shortest form that
// reads back exactly (0.1 -> "0.1"), so that equal texts mean equal values.
std::string setting_text(double value);
std::string setting_text(int64_t value);
std::string setting_text(bool value);

// Before forward, with the module's input.
using ForwardPreHook = std::function<void(Module& module, const Tensor& input)>;
// After forward, with input and output.
using ForwardHook = std::function<void(Module& module, const Tensor& input, const Tensor& output)>;
// In backward, once the gradient of the module's output is complete and before any gradient
// flows into the module's own ops.
using BackwardPreHook = std::function<void(Module& module, const Tensor& grad_output)>;

// The hooks of one module. Shared with the handles, so a handle that outlives its module is
// harmless.
struct ModuleHooks {
  size_t next_id = 0;
  std::vector<std::pair<size_t, ForwardPreHook>> forward_pre;
  std::vector<std::pair<size_t, ForwardHook>> forward;
  std::vector<std::pair<size_t, BackwardPreHook>> backward_pre;
};

// Returned by every register_*_hook; remove() unregisters the hook (idempotent).
class HookHandle {
 public:
  HookHandle() = default;
  HookHandle(std::weak_ptr<ModuleHooks> hooks, size_t id) : hooks_(std::move(hooks)), id_(id) {}
  void remove();

 private:
  std::weak_ptr<ModuleHooks> hooks_;
  size_t id_ = 0;
};

// What a non-strict load_state_dict skipped.
struct LoadStateDictResult {
  std::vector<std::string> missing_keys;
  std::vector<std::string> unexpected_keys;
};

class Module {
 public:
  explicit Module(std::string type_name);
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Forward with the hooks around it. Always call a module this way, never forward directly.
  Tensor operator()(const Tensor& input);
  const std::string& type_name() const { return type_name_; }
  // This module's hyperparameters that its parameters' shapes do not show on their own (heads,
  // dropout, eps, stride, ...; sizes may be repeated), not its children's. Distributed training
  // checks that every rank's model agrees in them (dist/model_consistency.h), so a layer with
  // such settings overrides it.
  virtual ModuleSettings describe() const { return {}; }

  // Registration. Names are non-empty, contain no '.', and are unique within this module.
  // A parameter's storage is counted as MemoryTag::Parameters and a floating parameter
  // requires grad. A non-persistent buffer is moved by to() but left out of state_dict.
  Tensor register_parameter(const std::string& name, Tensor parameter);
  Tensor register_buffer(const std::string& name, Tensor buffer, bool persistent = true);
  template <typename ModuleType>
  std::shared_ptr<ModuleType> register_module(const std::string& name, std::shared_ptr<ModuleType> child) {
    add_child(name, child);
    return child;
  }

  // Everything below walks this module first, then its children in registration order.
  // Parameters shared between modules (tied weights) are listed once, under their first name.
  std::vector<Tensor> parameters() const;
  std::vector<NamedTensor> named_parameters() const;
  std::vector<NamedTensor> named_buffers() const;
  std::vector<std::shared_ptr<Module>> children() const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const;
  std::vector<NamedModule> named_modules();  // this module first, under ""
  int64_t parameter_count() const;           // elements over all parameters

  void train(bool training = true);  // this module and all below it
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Drops every parameter's gradient (as PyTorch's set_to_none).
  void zero_grad();
  // Moves (or converts the floating) parameters and buffers in place: the Tensor handles that
  // layers and optimizers hold stay valid and see the new data.
  Module& to(Device device);
  Module& to(DType dtype);

  // Parameters and persistent buffers by hierarchical name. The tensors share storage with the
  // module and carry no autograd history. A tied parameter appears once, under its first name
  // (unlike PyTorch, whose state_dict repeats it; safetensors files cannot share tensors).
  StateDict state_dict() const;
  // Copies values in place (no autograd). Checks every key first and reports, in one error,
  // every missing, unexpected and mismatched (shape or dtype) key; nothing is copied unless all
  // checks pass. With strict = false, missing and unexpected keys are returned, not raised.
  LoadStateDictResult load_state_dict(const StateDict& state, bool strict = true);

  HookHandle register_forward_pre_hook(ForwardPreHook hook);
  HookHandle register_forward_hook(ForwardHook hook);
  HookHandle register_backward_pre_hook(BackwardPreHook hook);

  // What operator() does, with body in place of forward(input): for a module's second entry point
  // (LayerNorm::add_and_normalize), or for a parent whose fused op computes this module's part
  // with its parameters (MLP's feed_forward_gelu spans fc and proj); either way the hooks that
  // distributed training relies on (ZeRO stage 3 gathers parameters in them) still fire.
  Tensor call_with_hooks(const Tensor& input, const std::function<Tensor()>& body);

 protected:
  virtual Tensor forward(const Tensor& input) = 0;

 private:
  struct Slot {
    std::string name;
    Tensor tensor;
    bool persistent = true;
  };

  void add_child(const std::string& name, std::shared_ptr<Module> child);
  void check_new_name(const std::string& name, const char* what) const;
  void collect_parameters(const std::string& prefix, std::vector<NamedTensor>& out,
                          std::unordered_set<const TensorImpl*>& seen) const;
  void collect_buffers(const std::string& prefix, std::vector<NamedTensor>& out, bool persistent_only) const;
  void collect_state(const std::string& prefix, StateDict& out, std::unordered_set<const TensorImpl*>& seen) const;
  void collect_modules(const std::string& prefix, std::vector<NamedModule>& out, std::unordered_set<const Module*>& seen);
  // Replaces every parameter's and buffer's data by convert(data), keeping the handles.
  void convert_tensors(const std::function<Tensor(const Tensor&)>& convert);
  Tensor with_backward_pre_hooks(const Tensor& input, const Tensor& output);

  std::string type_name_;
  bool training_ = true;
  std::vector<Slot> parameters_;
  std::vector<Slot> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  std::shared_ptr<ModuleHooks> hooks_;
};

}  // namespace dtrain
