#pragma once
// The optimizer an example trains with, chosen by flags: AdamW (the default), Adam, or SGD with
// momentum.
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "optim/optimizer.h"

namespace dtrain::examples {

struct OptimizerChoice {
  std::string name = "adamw";  // adamw | adam | sgd
  double lr = 1e-3;
  double weight_decay = 0.0;  // AdamW: decoupled; Adam and SGD: L2 added to the gradient
  double momentum = 0.9;      // SGD only
};

inline const std::vector<std::string> kOptimizerNames = {"adamw", "adam", "sgd"};

std::unique_ptr<optim::Optimizer> make_optimizer(const OptimizerChoice& choice, std::vector<Tensor> parameters);

}  // namespace dtrain::examples
