#pragma once
// The backward engine: walks the graph that ops recorded (core/graph.h) from the roots,
// iteratively (a chain of 100,000 ops needs no deep stack), in reverse creation order among
// ready nodes — deterministic, so every rank fires its gradient hooks in the same order.
#include <vector>

#include "core/tensor.h"

namespace dtrain::autograd {

// Accumulates d(roots)/d(leaf) into every reachable leaf's .grad(). A root without a given
// gradient must have one element (its gradient is 1). Without retain_graph the saved tensors
// are freed as each node finishes.
void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& gradients = {}, bool retain_graph = false);

// d(outputs)/d(inputs) returned instead of accumulated (as torch.autograd.grad); leaves' .grad()
// is untouched. An input no gradient reaches gets an undefined tensor when allow_unused, else an
// error naming it.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& output_gradients = {}, bool retain_graph = false,
                         bool allow_unused = false);

}  // namespace dtrain::autograd
