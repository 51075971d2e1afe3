#include "optim/master_weight_adamw.h"

#include <cstddef>
#include <utility>

#include "core/error.h"
#include "core/grad_mode.h"
#include "core/ops/factory.h"
#include "optim/adam_update.h"

namespace dtrain::optim {

MasterWeightAdamW::MasterWeightAdamW(std::vector<Tensor> params, AdamWOptions options) : options_(options) {
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor& param = params[i];
    if (!param.defined()) fail("MasterWeightAdamW: expected defined parameters, got an undefined parameter ", i);
    if (!is_floating(param.dtype()) || !param.is_contiguous()) {
      fail("MasterWeightAdamW: expected contiguous floating parameters, got parameter ", i, " of dtype ", param.dtype(),
           param.is_contiguous() ? "" : ", not contiguous");
    }
    const DType state_dtype = statistics_dtype(param.dtype());
    const TensorOptions state_options{.dtype = state_dtype, .device = param.device()};
    AdamTensors tensors;
    tensors.param = param;
    tensors.exp_avg = zeros(param.shape(), state_options);
    tensors.exp_avg_sq = zeros(param.shape(), state_options);
    if (options.amsgrad) tensors.max_exp_avg_sq = zeros(param.shape(), state_options);
    if (state_dtype != param.dtype()) {
      NoGradGuard no_grad;
      tensors.master = param.to(state_dtype);  // a new float32 tensor, contiguous
    }
    parameters_.push_back(std::move(tensors));
  }
}

void MasterWeightAdamW::step() {
  ++step_;
  const AdamHyperParameters hyper{.lr = options_.lr,
                                  .beta1 = options_.betas.first,
                                  .beta2 = options_.betas.second,
                                  .eps = options_.eps,
                                  .weight_decay = options_.weight_decay,
                                  .weight_decay_kind = WeightDecayKind::Decoupled,
                                  .amsgrad = options_.amsgrad};
  std::vector<AdamTensors> ready;
  ready.reserve(parameters_.size());
  for (const AdamTensors& tensors : parameters_) {
    Tensor grad = tensors.param.grad();
    if (!grad.defined()) continue;
    AdamTensors with_grad = tensors;
    with_grad.grad = grad.is_contiguous() ? grad : grad.contiguous();
    ready.push_back(std::move(with_grad));
  }
  if (ready.empty()) return;
  backend_for(ready.front().param.device()).adam_update(ready, adam_step_scalars(hyper, step_));
  for (const AdamTensors& tensors : ready) tensors.param.storage()->bump_version();
}

void MasterWeightAdamW::zero_grad() {
  for (AdamTensors& tensors : parameters_) tensors.param.set_grad(Tensor());
}

const Tensor& MasterWeightAdamW::master(size_t i) const {
  if (i >= parameters_.size()) fail("MasterWeightAdamW: parameter ", i, " of ", parameters_.size(), " requested");
  return parameters_[i].master.defined() ? parameters_[i].master : parameters_[i].param;
}

}  // namespace dtrain::optim
