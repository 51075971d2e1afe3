#include "core/graph.h"

#include <atomic>
#include <cstddef>

#include "core/allocator.h"
#include "core/grad_mode.h"
#include "core/ops/ops.h"

namespace dtrain {

namespace {
std::atomic<uint64_t> next_sequence_nr{0};
std::atomic<size_t> next_output_hook_handle{1u << 30};
}  // namespace

Node::Node(std::string name, std::vector<Edge> next_edges)
    : next_edges_(std::move(next_edges)), name_(std::move(name)), sequence_nr_(next_sequence_nr.fetch_add(1)) {}

Node::~Node() {
  // A chain of 100,000 ops would otherwise be destroyed by 100,000 nested destructors. Nodes
  // about to die with us are unlinked onto a local stack first, so each dies with no edges.
  std::vector<std::shared_ptr<Node>> dying;
  auto take_unique = [&dying](std::vector<Edge>& edges) {
    for (Edge& edge : edges) {
      if (edge.node && edge.node.use_count() == 1) dying.push_back(std::move(edge.node));
    }
    edges.clear();
  };
  take_unique(next_edges_);
  while (!dying.empty()) {
    std::shared_ptr<Node> node = std::move(dying.back());
    dying.pop_back();
    take_unique(node->next_edges_);
  }
}

uint32_t Node::add_output(const Tensor& output) {
  outputs_.push_back(OutputMeta{output.shape(), output.dtype(), output.device()});
  output_hooks_.emplace_back();
  return static_cast<uint32_t>(outputs_.size() - 1);
}

size_t Node::add_output_hook(uint32_t output_nr, GradientHook hook) {
  size_t handle = next_output_hook_handle.fetch_add(1);
  output_hooks_.at(output_nr).emplace_back(handle, std::move(hook));
  return handle;
}

bool Node::remove_output_hook(size_t handle) {
  for (auto& hooks : output_hooks_) {
    for (auto it = hooks.begin(); it != hooks.end(); ++it) {
      if (it->first == handle) {
        hooks.erase(it);
        return true;
      }
    }
  }
  return false;
}

Tensor Node::run_output_hooks(uint32_t output_nr, Tensor gradient) const {
  for (const auto& [handle, hook] : output_hooks_.at(output_nr)) {
    Tensor replaced = hook(gradient);
    if (replaced.defined()) gradient = std::move(replaced);
  }
  return gradient;
}

SavedTensor::SavedTensor(const Tensor& tensor) {
  if (!tensor.defined()) return;
  data_ = tensor.detach();
  version_ = tensor.storage()->version();
}

Tensor SavedTensor::unpack(const char* op) const {
  if (data_.defined() && data_.storage()->version() != version_) {
    fail("backward of '", op, "': a tensor of shape ", data_.shape(), " that it saved for backward was modified by an ",
         "in-place operation afterwards (its version is ", data_.storage()->version(), ", saved at version ", version_,
         "); clone it before modifying, or modify a copy");
  }
  return data_;
}

FunctionNode::FunctionNode(std::string name, std::vector<Edge> next_edges, std::vector<OutputMeta> input_metas,
                           Backward backward)
    : Node(std::move(name), std::move(next_edges)), input_metas_(std::move(input_metas)), backward_(std::move(backward)) {}

GradientList FunctionNode::apply(GradientList&& output_gradients) {
  if (!backward_) {
    fail("backward through '", name(), "' a second time: its saved tensors were freed by the first backward ",
         "(pass retain_graph = true to the first backward to keep them)");
  }
  GradientList gradients = backward_(output_gradients);
  if (gradients.size() != next_edges_.size()) {
    fail("internal: backward of '", name(), "' returned ", gradients.size(), " gradients for ", next_edges_.size(),
         " inputs");
  }
  for (size_t i = 0; i < gradients.size(); ++i) {
    Tensor& gradient = gradients[i];
    if (!gradient.defined() || !next_edges_[i].valid()) {
      gradient = Tensor();
      continue;
    }
    const OutputMeta& input = input_metas_[i];
    if (gradient.shape() != input.shape) gradient = sum_to(gradient, input.shape);  // undo broadcasting
    if (gradient.dtype() != input.dtype) gradient = gradient.to(input.dtype);      // undo promotion
  }
  return gradients;
}

AccumulateGrad::AccumulateGrad(std::shared_ptr<TensorImpl> leaf) : Node("AccumulateGrad", {}), leaf_(std::move(leaf)) {}

GradientList AccumulateGrad::apply(GradientList&& output_gradients) {
  Tensor leaf(leaf_);
  AutogradMeta& meta = leaf.autograd_meta();
  Tensor gradient = std::move(output_gradients.at(0));
  for (const auto& [handle, hook] : meta.hooks) {
    Tensor replaced = hook(gradient);
    if (replaced.defined()) gradient = std::move(replaced);
  }
  if (!gradient.defined()) return {};
  if (gradient.shape() != leaf.shape() || gradient.dtype() != leaf.dtype()) {
    fail("internal: gradient of shape ", gradient.shape(), " and dtype ", gradient.dtype(), " for a leaf of shape ",
         leaf.shape(), " and dtype ", leaf.dtype());
  }
  NoGradGuard no_grad;
  if (!meta.grad.defined()) {
    // Take the gradient as it is when nothing else can see its bytes; else keep a private copy,
    // since accumulating in place later must not write into another tensor.
    bool unaliased = gradient.impl_ptr().use_count() == 1 && gradient.storage().use_count() == 1 &&
                     gradient.is_contiguous() && gradient.storage_offset() == 0;
    if (unaliased) {
      meta.grad = std::move(gradient);
    } else {
      MemoryTagScope tag(MemoryTag::Gradients);
      meta.grad = gradient.clone();
    }
    meta.grad.storage()->set_tag(MemoryTag::Gradients);
  } else {
    meta.grad.add_(gradient);
  }
  for (const auto& [handle, hook] : meta.post_accumulate_hooks) hook(leaf);
  return {};
}

bool any_requires_grad(std::initializer_list<const Tensor*> inputs) {
  if (!grad_mode_enabled()) return false;
  for (const Tensor* input : inputs) {
    if (input->defined() && input->requires_grad()) return true;
  }
  return false;
}

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!grad_mode_enabled()) return false;
  for (const Tensor& input : inputs) {
    if (input.defined() && input.requires_grad()) return true;
  }
  return false;
}

Edge gradient_edge(const Tensor& tensor) {
  if (!tensor.defined()) return {};
  if (tensor.grad_fn()) return Edge{tensor.grad_fn(), tensor.output_nr()};
  if (!tensor.requires_grad()) return {};
  AutogradMeta& meta = tensor.autograd_meta();
  std::shared_ptr<Node> accumulator = meta.grad_accumulator.lock();
  if (!accumulator) {
    accumulator = std::make_shared<AccumulateGrad>(tensor.impl_ptr());
    meta.grad_accumulator = accumulator;
  }
  return Edge{accumulator, 0};
}

void record(const char* name, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
            FunctionNode::Backward backward) {
  std::vector<Edge> edges;
  std::vector<OutputMeta> metas;
  edges.reserve(inputs.size());
  metas.reserve(inputs.size());
  for (const Tensor& input : inputs) {
    if (input.defined()) {
      edges.push_back(gradient_edge(input));
      metas.push_back(OutputMeta{input.shape(), input.dtype(), input.device()});
    } else {
      edges.emplace_back();
      metas.push_back(OutputMeta{{}, kFloat32, Device::cpu()});
    }
  }
  auto node = std::make_shared<FunctionNode>(name, std::move(edges), std::move(metas), std::move(backward));
  for (const Tensor& output : outputs) {
    AutogradMeta& meta = output.autograd_meta();
    meta.grad_fn = node;
    meta.output_nr = node->add_output(output);
  }
}

void check_inplace(const Tensor& tensor, const char* op) {
  check_defined(tensor, op, "self");
  if (grad_mode_enabled() && tensor.requires_grad()) {
    if (tensor.is_leaf()) {
      fail(op, ": in-place operation on a leaf tensor that requires grad (shape ", tensor.shape(),
           "); run it under NoGradGuard, as an optimizer update does");
    }
    fail(op, ": in-place operation on a tensor produced by '", tensor.grad_fn()->name(),
         "' that requires grad; use the out-of-place op so autograd sees the change");
  }
}

}  // namespace dtrain
