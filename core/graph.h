#pragma once
// The autograd graph as ops record it. Each differentiable op that sees an input requiring grad
// creates a Node holding its backward function and the edges to its inputs' nodes; the engine
// in autograd/ walks these nodes in reverse. A leaf that requires grad gets an AccumulateGrad
// node, which sums into .grad() and fires the leaf's hooks.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace dtrain {

struct Edge {
  std::shared_ptr<Node> node;
  uint32_t input_nr = 0;  // which of node's outputs this gradient belongs to
  bool valid() const { return node != nullptr; }
};

// What autograd knows about a tensor beyond its data.
struct AutogradMeta {
  bool requires_grad = false;
  bool retains_grad = false;
  Tensor grad;
  std::shared_ptr<Node> grad_fn;
  uint32_t output_nr = 0;
  std::weak_ptr<Node> grad_accumulator;  // leaves: created on demand, owned by the graph
  std::vector<std::pair<size_t, GradientHook>> hooks;  // leaves (non-leaf hooks live on grad_fn)
  std::vector<std::pair<size_t, PostAccumulateGradHook>> post_accumulate_hooks;
};

// Shape, dtype and device of a node's output: enough to make a zero gradient for an output
// that received none.
struct OutputMeta {
  Shape shape;
  DType dtype;
  Device device;
};

using GradientList = std::vector<Tensor>;

class Node {
 public:
  Node(std::string name, std::vector<Edge> next_edges);
  virtual ~Node();  // tears long chains down iteratively (no recursion through next_edges)
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Gradients of this node's outputs in, gradients of its inputs out (one per next edge; an
  // undefined tensor means no gradient flows there).
  virtual GradientList apply(GradientList&& output_gradients) = 0;
  // Drops saved tensors after a backward pass without retain_graph.
  virtual void release_saved() {}

  const std::string& name() const { return name_; }
  uint64_t sequence_nr() const { return sequence_nr_; }
  const std::vector<Edge>& next_edges() const { return next_edges_; }
  const std::vector<OutputMeta>& outputs() const { return outputs_; }
  uint32_t add_output(const Tensor& output);

  // Hooks on the gradient of one of this node's outputs (a non-leaf tensor's register_hook).
  size_t add_output_hook(uint32_t output_nr, GradientHook hook);
  bool remove_output_hook(size_t handle);
  Tensor run_output_hooks(uint32_t output_nr, Tensor gradient) const;

 protected:
  std::vector<Edge> next_edges_;

 private:
  std::string name_;
  uint64_t sequence_nr_;
  std::vector<OutputMeta> outputs_;
  std::vector<std::vector<std::pair<size_t, GradientHook>>> output_hooks_;
};

// A tensor kept for backward. It holds a detached handle (so an op's saved output does not keep
// its own node alive in a cycle) and the version its storage had when saved.
class SavedTensor {
 public:
  SavedTensor() = default;
  explicit SavedTensor(const Tensor& tensor);
  // Raises naming the op if the tensor was modified in place since it was saved.
  Tensor unpack(const char* op) const;
  bool defined() const { return data_.defined(); }

 private:
  Tensor data_;
  uint32_t version_ = 0;
};

// The node most ops record: a backward lambda that captures its SavedTensors by value.
class FunctionNode final : public Node {
 public:
  using Backward = std::function<GradientList(const GradientList& output_gradients)>;
  FunctionNode(std::string name, std::vector<Edge> next_edges, std::vector<OutputMeta> input_metas, Backward backward);
  GradientList apply(GradientList&& output_gradients) override;
  void release_saved() override { backward_ = nullptr; }

 private:
  std::vector<OutputMeta> input_metas_;  // to sum broadcast gradients back and cast to input dtype
  Backward backward_;
};

// Sums gradients into a leaf's .grad(), then fires its post-accumulate hooks.
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf);
  GradientList apply(GradientList&& output_gradients) override;
  const std::shared_ptr<TensorImpl>& leaf() const { return leaf_; }

 private:
  std::shared_ptr<TensorImpl> leaf_;
};

// --- what ops use to record history ---

// True when grad mode is on and any defined input requires grad.
bool any_requires_grad(std::initializer_list<const Tensor*> inputs);
bool any_requires_grad(const std::vector<Tensor>& inputs);
// The edge a gradient for this tensor flows into (its grad_fn, or its leaf accumulator).
Edge gradient_edge(const Tensor& tensor);
// Creates a FunctionNode for inputs and makes it the grad_fn of every output.
void record(const char* name, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
            FunctionNode::Backward backward);
// Raises if an in-place op would change a tensor that autograd tracks.
void check_inplace(const Tensor& tensor, const char* op);

}  // namespace dtrain
