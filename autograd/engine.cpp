#include "autograd/engine.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <queue>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "core/grad_mode.h"
#include "core/graph.h"
#include "core/ops/elementwise.h"
#include "core/ops/factory.h"
#include "core/profiler_recorder.h"

namespace dtrain::autograd {
namespace {

struct ReadyOrder {  // newest node first: reverse order of creation
  bool operator()(const std::shared_ptr<Node>& a, const std::shared_ptr<Node>& b) const {
    return a->sequence_nr() < b->sequence_nr();
  }
};

struct Capture {  // grad(): where an input's gradient is read off instead of accumulated
  Node* node;
  uint32_t input_nr;
  size_t slot;
};

class GraphTask {
 public:
  GraphTask(bool retain_graph, bool accumulate) : retain_graph_(retain_graph), accumulate_(accumulate) {}

  void add_capture(const Edge& edge, size_t slot) { captures_.push_back({edge.node.get(), edge.input_nr, slot}); }
  std::vector<Tensor>& captured() { return captured_; }

  void run(const std::vector<Edge>& roots, std::vector<Tensor> root_gradients) {
    count_dependencies(roots);
    for (size_t i = 0; i < roots.size(); ++i) accumulate_into(roots[i], std::move(root_gradients[i]));
    std::priority_queue<std::shared_ptr<Node>, std::vector<std::shared_ptr<Node>>, ReadyOrder> ready;
    std::unordered_set<Node*> queued;
    for (const Edge& root : roots) {
      if (dependencies_[root.node.get()] == 0 && queued.insert(root.node.get()).second) ready.push(root.node);
    }
    while (!ready.empty()) {
      std::shared_ptr<Node> node = ready.top();
      ready.pop();
      GradientList outputs = execute(*node);
      const std::vector<Edge>& edges = node->next_edges();
      for (size_t i = 0; i < edges.size(); ++i) {
        const Edge& edge = edges[i];
        if (!edge.valid()) continue;
        if (i < outputs.size() && outputs[i].defined()) accumulate_into(edge, std::move(outputs[i]));
        if (--dependencies_[edge.node.get()] == 0) ready.push(edge.node);
      }
    }
  }

 private:
  void count_dependencies(const std::vector<Edge>& roots) {
    std::vector<Node*> stack;
    std::unordered_set<Node*> seen;
    for (const Edge& root : roots) {
      if (seen.insert(root.node.get()).second) stack.push_back(root.node.get());
    }
    while (!stack.empty()) {
      Node* node = stack.back();
      stack.pop_back();
      for (const Edge& edge : node->next_edges()) {
        if (!edge.valid()) continue;
        ++dependencies_[edge.node.get()];
        if (seen.insert(edge.node.get()).second) stack.push_back(edge.node.get());
      }
    }
  }

  static size_t input_count(const Node& node) { return std::max<size_t>(node.outputs().size(), 1); }

  void accumulate_into(const Edge& edge, Tensor gradient) {
    GradientList& buffer = buffers_[edge.node.get()];
    if (buffer.empty()) buffer.resize(input_count(*edge.node));
    Tensor& slot = buffer.at(edge.input_nr);
    if (!slot.defined()) {
      slot = std::move(gradient);
    } else if (owns_its_bytes(slot) && slot.shape() == gradient.shape() && slot.dtype() == gradient.dtype()) {
      NoGradGuard no_grad;
      slot.add_(gradient);  // the same sum as add(), without a new tensor of the full size
    } else {
      slot = add(slot, gradient);
    }
  }

  // Whether nothing but this handle can see the tensor's bytes, so that adding into them in place
  // changes no other tensor (a gradient an op also returned elsewhere, or one a hook kept).
  static bool owns_its_bytes(const Tensor& tensor) {
    return tensor.impl_ptr().use_count() == 1 && tensor.storage().use_count() == 1 && tensor.is_contiguous() &&
           tensor.storage_offset() == 0;
  }

  GradientList execute(Node& node) {
    GradientList inputs;
    auto found = buffers_.find(&node);
    if (found != buffers_.end()) {
      inputs = std::move(found->second);
      buffers_.erase(found);
    }
    inputs.resize(input_count(node));
    bool any_defined = false;
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (!inputs[i].defined()) continue;
      if (i < node.outputs().size()) inputs[i] = node.run_output_hooks(static_cast<uint32_t>(i), std::move(inputs[i]));
      any_defined = any_defined || inputs[i].defined();
    }
    for (const Capture& capture : captures_) {
      if (capture.node == &node) captured_[capture.slot] = inputs.at(capture.input_nr);
    }
    if (!any_defined) return {};
    if (!accumulate_ && dynamic_cast<AccumulateGrad*>(&node) != nullptr) return {};
    for (size_t i = 0; i < node.outputs().size(); ++i) {  // an output that got no gradient gets zeros
      if (inputs[i].defined()) continue;
      const OutputMeta& meta = node.outputs()[i];
      inputs[i] = zeros(meta.shape, {.dtype = meta.dtype, .device = meta.device});
    }
    GradientList outputs = apply_profiled(node, std::move(inputs));
    if (!retain_graph_) node.release_saved();
    return outputs;
  }

  // node.apply inside a backward event of the profiler (core/profiler.h) while one records.
  static GradientList apply_profiled(Node& node, GradientList&& inputs) {
    if (!profiler::detail::recording()) [[likely]] return node.apply(std::move(inputs));
    const Device device = node.outputs().empty() ? inputs.front().device() : node.outputs().front().device;
    profiler::detail::Scope profiled(profiler::EventKind::Backward, node.name(), inputs, device);
    return node.apply(std::move(inputs));
  }

  bool retain_graph_;
  bool accumulate_;
  std::unordered_map<Node*, int64_t> dependencies_;
  std::unordered_map<Node*, GradientList> buffers_;
  std::vector<Capture> captures_;
  std::vector<Tensor> captured_;

 public:
  void resize_captured(size_t count) { captured_.resize(count); }
};

// The edges the roots' gradients enter, and those gradients (ones for a one-element root).
void prepare_roots(const std::vector<Tensor>& roots, const std::vector<Tensor>& gradients, const char* op,
                   std::vector<Edge>& edges, std::vector<Tensor>& root_gradients) {
  if (!gradients.empty() && gradients.size() != roots.size()) {
    fail(op, ": got ", gradients.size(), " gradients for ", roots.size(), " tensors");
  }
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& root = roots[i];
    check_defined(root, op, "tensor");
    if (!root.requires_grad()) {
      fail(op, ": tensor ", i, " (shape ", root.shape(), ") does not require grad and has no grad_fn, so there is ",
           "nothing to differentiate");
    }
    Tensor gradient = gradients.empty() ? Tensor() : gradients[i];
    if (!gradient.defined()) {
      if (root.numel() != 1) {
        fail(op, ": a gradient can be implied only for a one-element tensor, got shape ", root.shape(),
             " (pass the gradient explicitly)");
      }
      gradient = ones_like(root);
    } else if (gradient.shape() != root.shape()) {
      fail(op, ": the gradient's shape ", gradient.shape(), " does not match the tensor's shape ", root.shape());
    }
    edges.push_back(gradient_edge(root));
    root_gradients.push_back(gradient.dtype() == root.dtype() ? gradient : gradient.to(root.dtype()));
  }
}

}  // namespace

void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& gradients, bool retain_graph) {
  NoGradGuard no_grad;
  std::vector<Edge> edges;
  std::vector<Tensor> root_gradients;
  prepare_roots(roots, gradients, "backward", edges, root_gradients);
  GraphTask task(retain_graph, /*accumulate=*/true);
  task.run(edges, std::move(root_gradients));
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& output_gradients, bool retain_graph, bool allow_unused) {
  NoGradGuard no_grad;
  std::vector<Edge> edges;
  std::vector<Tensor> root_gradients;
  prepare_roots(outputs, output_gradients, "grad", edges, root_gradients);
  GraphTask task(retain_graph, /*accumulate=*/false);
  task.resize_captured(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    check_defined(inputs[i], "grad", "input");
    if (!inputs[i].requires_grad()) fail("grad: input ", i, " (shape ", inputs[i].shape(), ") does not require grad");
    task.add_capture(gradient_edge(inputs[i]), i);
  }
  task.run(edges, std::move(root_gradients));
  std::vector<Tensor> result = std::move(task.captured());
  for (size_t i = 0; i < result.size(); ++i) {
    if (!result[i].defined() && !allow_unused) {
      fail("grad: input ", i, " (shape ", inputs[i].shape(), ") is not reached from the outputs (pass allow_unused)");
    }
  }
  return result;
}

}  // namespace dtrain::autograd

namespace dtrain {
// Declared in core/tensor.h; defined here so that core does not depend on the engine.
void Tensor::backward(const Tensor& gradient, bool retain_graph) const {
  autograd::backward({*this}, {gradient}, retain_graph);
}
}  // namespace dtrain
