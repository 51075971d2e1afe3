#pragma once
// What Adam and AdamW share: their hyper-parameters by name, their state ("exp_avg",
// "exp_avg_sq", and "max_exp_avg_sq" with amsgrad) and the update (optim/adam_update.h). They
// differ only in how weight decay is applied.
#include <string>
#include <utility>
#include <vector>

#include "optim/adam_update.h"
#include "optim/optimizer.h"

namespace dtrain::optim {

class AdamFamily : public Optimizer {
 protected:
  AdamFamily(std::string name, WeightDecayKind weight_decay_kind, std::vector<ParamGroup> groups);

  // Adam's and AdamW's options have the same fields; both convert through these.
  template <typename Options>
  static HyperParameters to_hyperparameters(const Options& options) {
    return {{"lr", options.lr},
            {"beta1", options.betas.first},
            {"beta2", options.betas.second},
            {"eps", options.eps},
            {"weight_decay", options.weight_decay},
            {"amsgrad", options.amsgrad ? 1.0 : 0.0}};
  }
  template <typename Options>
  static Options to_options(const ParamGroup& group) {
    return {.lr = group.get("lr"),
            .betas = {group.get("beta1"), group.get("beta2")},
            .eps = group.get("eps"),
            .weight_decay = group.get("weight_decay"),
            .amsgrad = group.get("amsgrad") != 0.0};
  }
  template <typename Options>
  static std::vector<ParamGroup> to_groups(std::vector<ParamGroupOptions<Options>> groups) {
    std::vector<ParamGroup> result;
    for (auto& group : groups) {
      result.push_back({std::move(group.params), std::move(group.names), to_hyperparameters(group.options)});
    }
    return result;
  }

  void update(const ParamGroup& group, const Tensor& param, const Tensor& grad, ParameterState& state) override;
  // The multi-tensor step: adam_update_many over the group.
  void update_group(const ParamGroup& group, const std::vector<PendingUpdate>& updates) override;
  std::vector<std::string> state_names(const HyperParameters& hyperparameters) const override;
  void check_hyperparameters(const HyperParameters& hyperparameters) const override;

 private:
  AdamHyperParameters hyperparameters_of(const ParamGroup& group) const;
  AdamState state_of(const ParamGroup& group, const Tensor& param, ParameterState& state) const;

  WeightDecayKind weight_decay_kind_;
};

}  // namespace dtrain::optim
