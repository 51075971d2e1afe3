#pragma once
// Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay, as
// torch.optim.SGD (see optim/sgd_update.h for the rule).
//   optim::SGD sgd(model->parameters(), {.lr = 0.1, .momentum = 0.9, .nesterov = true});
#include <cstddef>
#include <string>
#include <vector>

#include "optim/optimizer.h"

namespace dtrain::optim {

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;  // L2: weight_decay * p is added to the gradient
  bool nesterov = false;      // needs momentum > 0 and dampening 0
};

class SGD : public Optimizer {
 public:
  explicit SGD(std::vector<Tensor> params, SGDOptions options = {});
  explicit SGD(std::vector<ParamGroupOptions<SGDOptions>> groups);

  SGDOptions options(size_t group = 0) const;
  void set_options(size_t group, const SGDOptions& options);

 protected:
  void update(const ParamGroup& group, const Tensor& param, const Tensor& grad, ParameterState& state) override;
  std::vector<std::string> state_names(const HyperParameters& hyperparameters) const override;
  void check_hyperparameters(const HyperParameters& hyperparameters) const override;
};

}  // namespace dtrain::optim
