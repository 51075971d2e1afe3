#include "optim/sgd.h"

#include <cstddef>
#include <string>
#include <utility>

#include "optim/sgd_update.h"

namespace dtrain::optim {

namespace {

HyperParameters to_hyperparameters(const SGDOptions& options) {
  return {{"lr", options.lr},
          {"momentum", options.momentum},
          {"dampening", options.dampening},
          {"weight_decay", options.weight_decay},
          {"nesterov", options.nesterov ? 1.0 : 0.0}};
}

SGDOptions to_options(const ParamGroup& group) {
  return {.lr = group.get("lr"),
          .momentum = group.get("momentum"),
          .dampening = group.get("dampening"),
          .weight_decay = group.get("weight_decay"),
          .nesterov = group.get("nesterov") != 0.0};
}

std::vector<ParamGroup> to_groups(std::vector<ParamGroupOptions<SGDOptions>> groups) {
  std::vector<ParamGroup> result;
  for (auto& group : groups) {
    result.push_back({std::move(group.params), std::move(group.names), to_hyperparameters(group.options)});
  }
  return result;
}

}  // namespace

SGD::SGD(std::vector<Tensor> params, SGDOptions options) : SGD({{.params = std::move(params), .options = options}}) {}

SGD::SGD(std::vector<ParamGroupOptions<SGDOptions>> groups) : Optimizer("SGD", to_groups(std::move(groups))) {
  check_all_groups();
}

SGDOptions SGD::options(size_t group) const { return to_options(param_group(group)); }

void SGD::set_options(size_t group, const SGDOptions& options) {
  replace_hyperparameters(group, to_hyperparameters(options));
}

void SGD::update(const ParamGroup& group, const Tensor& param, const Tensor& grad, ParameterState& state) {
  const SGDOptions options = to_options(group);
  const SgdHyperParameters hyper{.lr = options.lr,
                                 .momentum = options.momentum,
                                 .dampening = options.dampening,
                                 .weight_decay = options.weight_decay,
                                 .nesterov = options.nesterov};
  Tensor momentum_buffer;
  bool first_step = false;
  if (options.momentum != 0.0) {
    // PyTorch starts the buffer at the first gradient it sees (no dampening on that step).
    first_step = !state.tensors.contains("momentum_buffer");
    momentum_buffer = state_tensor(state, "momentum_buffer", param);
  }
  sgd_update(param, grad, momentum_buffer, first_step, hyper, fused());
}

std::vector<std::string> SGD::state_names(const HyperParameters& hyperparameters) const {
  auto momentum = hyperparameters.find("momentum");
  if (momentum != hyperparameters.end() && momentum->second != 0.0) return {"momentum_buffer"};
  return {};
}

void SGD::check_hyperparameters(const HyperParameters& hyperparameters) const {
  const ParamGroup view{{}, {}, hyperparameters};
  const SGDOptions options = to_options(view);
  if (!(options.lr >= 0.0)) fail("expected lr >= 0, got ", options.lr);
  if (!(options.momentum >= 0.0)) fail("expected momentum >= 0, got ", options.momentum);
  if (!(options.weight_decay >= 0.0)) fail("expected weight_decay >= 0, got ", options.weight_decay);
  if (options.nesterov && (options.momentum <= 0.0 || options.dampening != 0.0)) {
    fail("nesterov momentum needs momentum > 0 and dampening 0, got momentum ", options.momentum,
         " and dampening ", options.dampening);
  }
}

}  // namespace dtrain::optim
