#include "optim/adam_family.h"

namespace dtrain::optim {

AdamFamily::AdamFamily(std::string name, WeightDecayKind weight_decay_kind, std::vector<ParamGroup> groups)
    : Optimizer(std::move(name), std::move(groups)), weight_decay_kind_(weight_decay_kind) {}

AdamHyperParameters AdamFamily::hyperparameters_of(const ParamGroup& group) const {
  return {.lr = group.get("lr"),
          .beta1 = group.get("beta1"),
          .beta2 = group.get("beta2"),
          .eps = group.get("eps"),
          .weight_decay = group.get("weight_decay"),
          .weight_decay_kind = weight_decay_kind_,
          .amsgrad = group.get("amsgrad") != 0.0};
}

AdamState AdamFamily::state_of(const ParamGroup& group, const Tensor& param, ParameterState& state) const {
  AdamState tensors{.exp_avg = state_tensor(state, "exp_avg", param),
                    .exp_avg_sq = state_tensor(state, "exp_avg_sq", param),
                    .max_exp_avg_sq = Tensor()};
  if (group.get("amsgrad") != 0.0) tensors.max_exp_avg_sq = state_tensor(state, "max_exp_avg_sq", param);
  return tensors;
}

void AdamFamily::update(const ParamGroup& group, const Tensor& param, const Tensor& grad, ParameterState& state) {
  adam_update(param, grad, state_of(group, param, state), hyperparameters_of(group), state.step, fused());
}

void AdamFamily::update_group(const ParamGroup& group, const std::vector<PendingUpdate>& updates) {
  std::vector<AdamUpdateItem> items;
  items.reserve(updates.size());
  for (const PendingUpdate& pending : updates) {
    items.push_back({.param = pending.param,
                     .grad = pending.grad,
                     .state = state_of(group, pending.param, *pending.state),
                     .step = pending.state->step});
  }
  adam_update_many(items, hyperparameters_of(group), fused());
}

std::vector<std::string> AdamFamily::state_names(const HyperParameters& hyperparameters) const {
  auto amsgrad = hyperparameters.find("amsgrad");
  if (amsgrad != hyperparameters.end() && amsgrad->second != 0.0) return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  return {"exp_avg", "exp_avg_sq"};
}

void AdamFamily::check_hyperparameters(const HyperParameters& hyperparameters) const {
  const ParamGroup view{{}, {}, hyperparameters};
  const double lr = view.get("lr");
  const double beta1 = view.get("beta1");
  const double beta2 = view.get("beta2");
  const double eps = view.get("eps");
  const double weight_decay = view.get("weight_decay");
  view.get("amsgrad");
  if (!(lr >= 0.0)) fail("expected lr >= 0, got ", lr);
  if (!(eps >= 0.0)) fail("expected eps >= 0, got ", eps);
  if (!(beta1 >= 0.0 && beta1 < 1.0)) fail("expected 0 <= betas.first < 1, got ", beta1);
  if (!(beta2 >= 0.0 && beta2 < 1.0)) fail("expected 0 <= betas.second < 1, got ", beta2);
  if (!(weight_decay >= 0.0)) fail("expected weight_decay >= 0, got ", weight_decay);
}

}  // namespace dtrain::optim
