#include "train/optimizer_choice.h"

#include <utility>

#include "core/error.h"
#include "optim/adam.h"
#include "optim/adamw.h"
#include "optim/sgd.h"
#include "tools/command_line/program_exit.h"

namespace dtrain::train {

std::unique_ptr<optim::Optimizer> make_optimizer(const OptimizerChoice& choice, std::vector<Tensor> parameters) {
  if (choice.name == "adamw") {
    return std::make_unique<optim::AdamW>(std::move(parameters),
                                          optim::AdamWOptions{.lr = choice.lr, .weight_decay = choice.weight_decay});
  }
  if (choice.name == "adam") {
    return std::make_unique<optim::Adam>(std::move(parameters),
                                         optim::AdamOptions{.lr = choice.lr, .weight_decay = choice.weight_decay});
  }
  if (choice.name == "sgd") {
    return std::make_unique<optim::SGD>(
        std::move(parameters),
        optim::SGDOptions{.lr = choice.lr, .momentum = choice.momentum, .weight_decay = choice.weight_decay});
  }
  fail("unknown optimizer '", choice.name, "'; expected adamw, adam or sgd");
}

}  // namespace dtrain::train
