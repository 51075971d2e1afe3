#pragma once
// An optimizer whose per-parameter state has names none of dtrain's own optimizers use
// ("velocity" and "squared_gradient_sum"): checkpoint paths must save and load optimizer state
// by whatever names the optimizer keeps, not from a list of known ones.
//   v <- momentum * v + g;  s <- s + g * g;  p <- p - lr * v / (sqrt(s) + 1)
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/ops/elementwise.h"
#include "core/ops/unary.h"
#include "optim/optimizer.h"

namespace dtrain::testing {

struct VelocityOptions {
  double lr = 0.05;
  double momentum = 0.8;
};

class VelocityOptimizer : public optim::Optimizer {
 public:
  VelocityOptimizer(std::vector<Tensor> params, VelocityOptions options)
      : Optimizer("VelocityOptimizer",
                  {{std::move(params), {}, {{"lr", options.lr}, {"momentum", options.momentum}}}}) {
    check_all_groups();
  }

 protected:
  void update(const optim::ParamGroup& group, const Tensor& param, const Tensor& grad,
              optim::ParameterState& state) override {
    Tensor& velocity = state_tensor(state, "velocity", param);
    Tensor& squared_sum = state_tensor(state, "squared_gradient_sum", param);
    velocity.copy_(add(mul(velocity, group.get("momentum")), grad));
    squared_sum.copy_(add(squared_sum, mul(grad, grad)));
    Tensor updated = param;  // a handle to the same storage
    updated.copy_(sub(param, div(mul(velocity, group.get("lr")), add(sqrt(squared_sum), 1.0))));
  }
  std::vector<std::string> state_names(const optim::HyperParameters&) const override {
    return {"squared_gradient_sum", "velocity"};
  }
  void check_hyperparameters(const optim::HyperParameters& hyperparameters) const override {
    for (const char* name : {"lr", "momentum"}) {
      if (hyperparameters.count(name) == 0) fail("VelocityOptimizer: expected the hyper-parameter '", name, "'");
    }
  }
};

}  // namespace dtrain::testing
