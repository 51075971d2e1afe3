#pragma once
// The two reference models of the training-step benchmark, built from dtrain's public layers.
// bench/train_step_torch.py builds the same two in PyTorch, layer for layer, so that both have
// the same parameter count and do the same arithmetic.
#include <memory>
#include <vector>

#include "dtrain.h"

namespace dtrain::bench {

// MLP 784-1024-1024-10 with ReLU (a Fashion-MNIST classifier's shape).
inline std::shared_ptr<Module> make_mlp() {
  return std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
      std::make_shared<Linear>(784, 1024), std::make_shared<ReLU>(), std::make_shared<Linear>(1024, 1024),
      std::make_shared<ReLU>(), std::make_shared<Linear>(1024, 10)});
}

// GPT-2's architecture (layers/gpt.h) with its shape: token + position embeddings, pre-norm
// blocks (LayerNorm, causal attention, GELU-tanh MLP), a final LayerNorm and an output layer tied
// to the token embedding. The benchmarks leave dropout at 0: it would only add random-number work
// that the two libraries draw differently.
using GptShape = GPTConfig;
using BenchGpt = GPT;

}  // namespace dtrain::bench
