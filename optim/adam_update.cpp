// No fused multiply-adds in this file: the tensor-op chain must round exactly as the fused loop
// (core/cpu/adam_kernels.cpp) does, so that both paths give bitwise the same parameters (a test
// checks); CMakeLists.txt compiles this file with -ffp-contract=off so no multiply-add is fused.
#include "optim/adam_update.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/backend.h"
#include "core/ops/elementwise.h"
#include "core/ops/unary.h"

namespace dtrain::optim {

namespace {

// Whether the device's fused kernel (Backend::adam_update) takes this parameter's tensors: the
// kernel table's answer (Backend::supports), asked of the parameter's device.
bool fusable(const Tensor& param, const Tensor& grad, const AdamState& state) {
  const KernelCase query{.kernel = FusedKernel::AdamUpdate,
                         .tensors = {param, grad, state.exp_avg, state.exp_avg_sq, state.max_exp_avg_sq, Tensor()}};
  return backend_for(param.device()).supports(query).supported;
}

void adam_tensor_ops(const Tensor& param_handle, const Tensor& grad, const AdamState& state,
                     const AdamHyperParameters& hyper, const AdamStepScalars& c) {
  Tensor param = param_handle;
  Tensor exp_avg = state.exp_avg;
  Tensor exp_avg_sq = state.exp_avg_sq;
  Tensor g = c.l2 ? add(grad, param, hyper.weight_decay) : grad;
  if (c.decoupled) param.mul_(c.decay_factor);
  exp_avg.mul_(hyper.beta1).add_(g, 1.0 - hyper.beta1);
  exp_avg_sq.mul_(hyper.beta2).add_(mul(g, g), 1.0 - hyper.beta2);
  Tensor second_moment = exp_avg_sq;
  if (state.max_exp_avg_sq.defined()) {
    Tensor max_exp_avg_sq = state.max_exp_avg_sq;
    max_exp_avg_sq.copy_(maximum(max_exp_avg_sq, exp_avg_sq));
    second_moment = max_exp_avg_sq;
  }
  Tensor denom = div(sqrt(second_moment), c.bias_correction2_sqrt);
  denom.add_(hyper.eps);
  param.add_(div(exp_avg, denom), -c.step_size);
}

}  // namespace

// The per-step numbers, computed once in double as PyTorch computes them in Python floats.
AdamStepScalars adam_step_scalars(const AdamHyperParameters& hyper, int64_t step) {
  const double t = static_cast<double>(step);
  AdamStepScalars c;
  c.beta1 = hyper.beta1;
  c.beta2 = hyper.beta2;
  c.eps = hyper.eps;
  c.weight_decay = hyper.weight_decay;
  c.step_size = hyper.lr / (1.0 - std::pow(hyper.beta1, t));
  c.bias_correction2_sqrt = std::sqrt(1.0 - std::pow(hyper.beta2, t));
  c.decay_factor = 1.0 - hyper.lr * hyper.weight_decay;
  c.l2 = hyper.weight_decay != 0.0 && hyper.weight_decay_kind == WeightDecayKind::L2;
  c.decoupled = hyper.weight_decay != 0.0 && hyper.weight_decay_kind == WeightDecayKind::Decoupled;
  return c;
}

void adam_update(const Tensor& param, const Tensor& grad, const AdamState& state, const AdamHyperParameters& hyper,
                 int64_t step, bool allow_fused) {
  const AdamStepScalars c = adam_step_scalars(hyper, step);
  if (allow_fused && fusable(param, grad, state)) {
    backend_for(param.device())
        .adam_update({AdamTensors{.param = param, .grad = grad, .exp_avg = state.exp_avg, .exp_avg_sq = state.exp_avg_sq,
                                  .max_exp_avg_sq = state.max_exp_avg_sq, .master = Tensor()}},
                     c);
    // Autograd refuses a saved tensor whose version moved on; a raw write must say it happened.
    param.storage()->bump_version();
    return;
  }
  adam_tensor_ops(param, grad, state, hyper, c);
}

void adam_update_many(const std::vector<AdamUpdateItem>& items, const AdamHyperParameters& hyper, bool allow_fused) {
  // Batches keyed by device and update number, in the order their first parameter comes.
  struct Batch {
    Device device;
    int64_t step;
    std::vector<AdamTensors> parameters;
  };
  std::vector<Batch> batches;
  for (const AdamUpdateItem& item : items) {
    if (!(allow_fused && fusable(item.param, item.grad, item.state))) {
      adam_update(item.param, item.grad, item.state, hyper, item.step, /*allow_fused=*/false);
      continue;
    }
    auto batch = std::find_if(batches.begin(), batches.end(), [&](const Batch& candidate) {
      return candidate.device == item.param.device() && candidate.step == item.step;
    });
    if (batch == batches.end()) batch = batches.insert(batches.end(), Batch{item.param.device(), item.step, {}});
    batch->parameters.push_back(AdamTensors{.param = item.param, .grad = item.grad, .exp_avg = item.state.exp_avg,
                                            .exp_avg_sq = item.state.exp_avg_sq,
                                            .max_exp_avg_sq = item.state.max_exp_avg_sq, .master = Tensor()});
  }
  for (const Batch& batch : batches) {
    backend_for(batch.device).adam_update(batch.parameters, adam_step_scalars(hyper, batch.step));
    for (const AdamTensors& parameter : batch.parameters) parameter.param.storage()->bump_version();
  }
}

}  // namespace dtrain::optim
