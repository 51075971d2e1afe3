#include "layers/module.h"

#include <charconv>
#include <cstdint>
#include <sstream>
#include <string>
#include <system_error>
#include <unordered_set>

#include "core/allocator.h"
#include "core/grad_mode.h"
#include "core/graph.h"
#include "core/ops/view.h"

namespace dtrain {

namespace {

std::string qualified(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

template <typename Hook>
void erase_hook(std::vector<std::pair<size_t, Hook>>& hooks, size_t id) {
  std::erase_if(hooks, [id](const auto& entry) { return entry.first == id; });
}

// Points target's handle at source's data: every holder of target (a layer's member, an
// optimizer's list) sees the new storage, dtype or device without being told.
void replace_data(const Tensor& target, const Tensor& source) {
  TensorImpl& impl = *target.unsafe_impl();
  impl.storage = source.storage();
  impl.strides = source.strides();
  impl.offset = source.storage_offset();
  impl.dtype = source.dtype();
}

std::string join_names(const std::vector<std::string>& names) {
  std::string joined;
  for (const std::string& name : names) joined += (joined.empty() ? "" : ", ") + name;
  return joined;
}

const char* plural(size_t count, const char* one, const char* many) { return count == 1 ? one : many; }

}  // namespace

std::string setting_text(double value) {
  char text[64];
  auto [end, error] = std::to_chars(text, text + sizeof text, value);
  return error == std::errc() ? std::string(text, end) : std::to_string(value);
}

std::string setting_text(int64_t value) { return std::to_string(value); }

std::string setting_text(bool value) { return value ? "true" : "false"; }

void HookHandle::remove() {
  std::shared_ptr<ModuleHooks> hooks = hooks_.lock();
  if (!hooks) return;
  erase_hook(hooks->forward_pre, id_);
  erase_hook(hooks->forward, id_);
  erase_hook(hooks->backward_pre, id_);
  hooks_.reset();
}

Module::Module(std::string type_name) : type_name_(std::move(type_name)), hooks_(std::make_shared<ModuleHooks>()) {}

// --- forward and hooks ---

Tensor Module::operator()(const Tensor& input) {
  return call_with_hooks(input, [&] { return forward(input); });
}

Tensor Module::call_with_hooks(const Tensor& input, const std::function<Tensor()>& body) {
  std::shared_ptr<ModuleHooks> hooks = hooks_;
  // Copies: a hook may remove itself (or others) while the list is being walked.
  for (const auto& [id, hook] : std::vector(hooks->forward_pre)) hook(*this, input);
  Tensor output = body();
  if (!hooks->backward_pre.empty() && output.defined() && output.requires_grad() && grad_mode_enabled()) {
    output = with_backward_pre_hooks(input, output);
  }
  for (const auto& [id, hook] : std::vector(hooks->forward)) hook(*this, input, output);
  return output;
}

Tensor Module::with_backward_pre_hooks(const Tensor& input, const Tensor& output) {
  // The hook goes on the output's gradient. An output that is a leaf or the input itself (an
  // identity module) gets a view of its own first, so the hook lives with this forward's graph
  // and neither stays on a leaf across steps nor fires for another module's gradient.
  Tensor hooked = (output.is_leaf() || output.is_same(input)) ? view(output, output.shape()) : output;
  std::weak_ptr<ModuleHooks> weak_hooks = hooks_;
  Module* self = this;  // alive as long as its hooks are: the module owns them
  hooked.register_hook([weak_hooks, self](const Tensor& grad_output) {
    if (std::shared_ptr<ModuleHooks> hooks = weak_hooks.lock()) {
      for (const auto& [id, hook] : std::vector(hooks->backward_pre)) hook(*self, grad_output);
    }
    return Tensor();
  });
  return hooked;
}

HookHandle Module::register_forward_pre_hook(ForwardPreHook hook) {
  size_t id = ++hooks_->next_id;
  hooks_->forward_pre.emplace_back(id, std::move(hook));
  return HookHandle(hooks_, id);
}

HookHandle Module::register_forward_hook(ForwardHook hook) {
  size_t id = ++hooks_->next_id;
  hooks_->forward.emplace_back(id, std::move(hook));
  return HookHandle(hooks_, id);
}

HookHandle Module::register_backward_pre_hook(BackwardPreHook hook) {
  size_t id = ++hooks_->next_id;
  hooks_->backward_pre.emplace_back(id, std::move(hook));
  return HookHandle(hooks_, id);
}

// --- registration ---

void Module::check_new_name(const std::string& name, const char* what) const {
  if (name.empty() || name.find('.') != std::string::npos) {
    fail(type_name_, ": a ", what, " name must be non-empty and contain no '.', got '", name, "'");
  }
  bool taken = false;
  for (const Slot& slot : parameters_) taken = taken || slot.name == name;
  for (const Slot& slot : buffers_) taken = taken || slot.name == name;
  for (const auto& child : children_) taken = taken || child.first == name;
  if (taken) {
    fail(type_name_, ": cannot register ", what, " '", name, "': the name is already taken in this module");
  }
}

Tensor Module::register_parameter(const std::string& name, Tensor parameter) {
  check_new_name(name, "parameter");
  check_defined(parameter, "register_parameter", name.c_str());
  if (!parameter.is_leaf()) {
    fail(type_name_, ": parameter '", name, "' must be a leaf tensor, got one produced by '",
         parameter.grad_fn()->name(), "' (detach() it first)");
  }
  parameter.storage()->set_tag(MemoryTag::Parameters);
  if (is_floating(parameter.dtype())) parameter.set_requires_grad(true);
  parameters_.push_back(Slot{name, parameter, true});
  return parameter;
}

Tensor Module::register_buffer(const std::string& name, Tensor buffer, bool persistent) {
  check_new_name(name, "buffer");
  check_defined(buffer, "register_buffer", name.c_str());
  buffers_.push_back(Slot{name, buffer, persistent});
  return buffer;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> child) {
  check_new_name(name, "module");
  if (!child) fail(type_name_, ": cannot register module '", name, "': it is null");
  if (child.get() == this) fail(type_name_, ": cannot register module '", name, "' as a child of itself");
  children_.emplace_back(name, std::move(child));
}

// --- walking the tree ---

void Module::collect_parameters(const std::string& prefix, std::vector<NamedTensor>& out,
                                std::unordered_set<const TensorImpl*>& seen) const {
  for (const Slot& slot : parameters_) {
    if (!seen.insert(slot.tensor.unsafe_impl()).second) continue;  // tied: listed under its first name
    out.emplace_back(qualified(prefix, slot.name), slot.tensor);
  }
  for (const auto& [name, child] : children_) child->collect_parameters(qualified(prefix, name), out, seen);
}

void Module::collect_buffers(const std::string& prefix, std::vector<NamedTensor>& out, bool persistent_only) const {
  for (const Slot& slot : buffers_) {
    if (!persistent_only || slot.persistent) out.emplace_back(qualified(prefix, slot.name), slot.tensor);
  }
  for (const auto& [name, child] : children_) child->collect_buffers(qualified(prefix, name), out, persistent_only);
}

void Module::collect_state(const std::string& prefix, StateDict& out,
                           std::unordered_set<const TensorImpl*>& seen) const {
  // As PyTorch orders it: this module's parameters, its buffers, then each child in turn. A tied
  // parameter (registered by two modules) is listed once, under its first name, as in
  // named_parameters(): safetensors files hold no shared tensors, and ZeRO saves it once.
  for (const Slot& slot : parameters_) {
    if (!seen.insert(slot.tensor.unsafe_impl()).second) continue;
    out.insert(qualified(prefix, slot.name), slot.tensor.detach());
  }
  for (const Slot& slot : buffers_) {
    if (slot.persistent) out.insert(qualified(prefix, slot.name), slot.tensor.detach());
  }
  for (const auto& [name, child] : children_) child->collect_state(qualified(prefix, name), out, seen);
}

void Module::collect_modules(const std::string& prefix, std::vector<NamedModule>& out,
                             std::unordered_set<const Module*>& seen) {
  if (!seen.insert(this).second) return;  // a shared module is listed once
  out.emplace_back(prefix, this);
  for (const auto& [name, child] : children_) child->collect_modules(qualified(prefix, name), out, seen);
}

std::vector<NamedTensor> Module::named_parameters() const {
  std::vector<NamedTensor> out;
  std::unordered_set<const TensorImpl*> seen;
  collect_parameters("", out, seen);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, tensor] : named_parameters()) out.push_back(tensor);
  return out;
}

std::vector<NamedTensor> Module::named_buffers() const {
  std::vector<NamedTensor> out;
  collect_buffers("", out, false);
  return out;
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& [name, child] : children_) out.push_back(child);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_children() const { return children_; }

std::vector<NamedModule> Module::named_modules() {
  std::vector<NamedModule> out;
  std::unordered_set<const Module*> seen;
  collect_modules("", out, seen);
  return out;
}

int64_t Module::parameter_count() const {
  int64_t count = 0;
  for (const Tensor& parameter : parameters()) count += parameter.numel();
  return count;
}

// --- state ---

void Module::train(bool training) {
  for (auto& [name, module] : named_modules()) module->training_ = training;
}

void Module::zero_grad() {
  for (const Tensor& parameter : parameters()) {
    if (parameter.grad().defined()) parameter.autograd_meta().grad = Tensor();
  }
}

void Module::convert_tensors(const std::function<Tensor(const Tensor&)>& convert) {
  NoGradGuard no_grad;
  auto convert_in_place = [&convert](const Tensor& tensor) {
    MemoryTagScope tag(tensor.storage()->tag());
    Tensor converted = convert(tensor);
    if (converted.is_same(tensor)) return;  // already there (or shared and done before)
    Tensor gradient = tensor.grad();
    replace_data(tensor, converted);
    if (gradient.defined()) {
      MemoryTagScope gradient_tag(MemoryTag::Gradients);
      tensor.autograd_meta().grad = convert(gradient).contiguous();
    }
  };
  for (auto& [name, module] : named_modules()) {
    for (const Slot& slot : module->parameters_) convert_in_place(slot.tensor);
    for (const Slot& slot : module->buffers_) convert_in_place(slot.tensor);
  }
}

Module& Module::to(Device device) {
  convert_tensors([device](const Tensor& tensor) { return tensor.to(device); });
  return *this;
}

Module& Module::to(DType dtype) {
  if (!is_floating(dtype)) fail(type_name_, ".to: expected a floating dtype for the parameters, got ", dtype);
  // Only floating tensors change type (integer buffers such as counts keep theirs), as PyTorch.
  convert_tensors([dtype](const Tensor& tensor) { return is_floating(tensor.dtype()) ? tensor.to(dtype) : tensor; });
  return *this;
}

StateDict Module::state_dict() const {
  StateDict state;
  std::unordered_set<const TensorImpl*> seen;
  collect_state("", state, seen);
  return state;
}

LoadStateDictResult Module::load_state_dict(const StateDict& state, bool strict) {
  StateDict own = state_dict();
  LoadStateDictResult result;
  std::vector<std::string> mismatched;
  for (const auto& [name, target] : own) {
    const Tensor* source = state.find(name);
    if (source == nullptr) {
      result.missing_keys.push_back(name);
    } else if (!source->defined()) {
      mismatched.push_back(name + " (expected shape " + target.shape().str() + ", got an undefined tensor)");
    } else if (source->shape() != target.shape() || source->dtype() != target.dtype()) {
      std::ostringstream line;
      line << name << " (expected shape " << target.shape() << " " << target.dtype() << ", got shape "
           << source->shape() << " " << source->dtype() << ")";
      mismatched.push_back(line.str());
    }
  }
  for (const auto& [name, source] : state) {
    if (!own.contains(name)) result.unexpected_keys.push_back(name);
  }

  bool key_errors = strict && (!result.missing_keys.empty() || !result.unexpected_keys.empty());
  if (key_errors || !mismatched.empty()) {
    std::ostringstream message;
    message << "load_state_dict (" << type_name_ << "): the state dict does not fit the model";
    if (strict && !result.missing_keys.empty()) {
      message << "; " << result.missing_keys.size() << plural(result.missing_keys.size(), " missing key: ", " missing keys: ")
              << join_names(result.missing_keys);
    }
    if (strict && !result.unexpected_keys.empty()) {
      message << "; " << result.unexpected_keys.size()
              << plural(result.unexpected_keys.size(), " unexpected key: ", " unexpected keys: ")
              << join_names(result.unexpected_keys);
    }
    if (!mismatched.empty()) {
      message << "; " << mismatched.size() << plural(mismatched.size(), " mismatched key: ", " mismatched keys: ")
              << join_names(mismatched);
    }
    fail(message.str());
  }

  NoGradGuard no_grad;
  for (const auto& [name, target] : own) {
    if (const Tensor* source = state.find(name)) {
      Tensor destination = target;  // shares the module's storage: copying writes the module's value
      destination.copy_(*source);
    }
  }
  return result;
}

}  // namespace dtrain
