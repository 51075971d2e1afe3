#pragma once
// An optimizer chosen by name and a few numbers (a program's flags): AdamW (the default), Adam,
// or SGD with momentum. make_optimizer is also what train::Trainer takes as its optimizer factory.
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "optim/optimizer.h"

namespace dtrain::train {

struct OptimizerChoice {
  std::string name = "adamw";  // adamw | adam | sgd
  double lr = 1e-3;
  double weight_decay = 0.0;  // AdamW: decoupled; Adam and SGD: L2 added to the gradient
  double momentum = 0.9;      // SGD only
};

inline const std::vector<std::string> kOptimizerNames = {"adamw", "adam", "sgd"};

std::unique_ptr<optim::Optimizer> make_optimizer(const OptimizerChoice& choice, std::vector<Tensor> parameters);

}  // namespace dtrain::train
