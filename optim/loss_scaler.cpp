#include "optim/loss_scaler.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "core/grad_mode.h"
#include "core/ops/elementwise.h"
#include "core/ops/reduce.h"
#include "optim/fused_cpu.h"

namespace dtrain::optim {

namespace {

// Multiplies in place and reports whether any value was inf or NaN before, in one pass.
template <typename T>
bool unscale_loop(T* grad, int64_t n, T inverse_scale) {
  int non_finite = 0;
#pragma omp parallel for simd reduction(max : non_finite) if (n >= kMinElementsToParallelize)
  for (int64_t i = 0; i < n; ++i) {
    non_finite = std::max(non_finite, std::isfinite(grad[i]) ? 0 : 1);
    grad[i] = grad[i] * inverse_scale;
  }
  return non_finite != 0;
}

bool unscale_gradient(Tensor& grad, double inverse_scale) {
  if (fusable_on_cpu({grad})) {
    const bool non_finite = grad.dtype() == kFloat32
                                ? unscale_loop(grad.data_ptr<float>(), grad.numel(), static_cast<float>(inverse_scale))
                                : unscale_loop(grad.data_ptr<double>(), grad.numel(), inverse_scale);
    grad.storage()->bump_version();
    return non_finite;
  }
  // x * 0 is 0 for finite x and NaN for inf or NaN, so the sum is NaN exactly when one is.
  const bool non_finite = std::isnan(sum(mul(grad, 0.0)).item());
  grad.mul_(inverse_scale);
  return non_finite;
}

}  // namespace

DynamicLossScaler::DynamicLossScaler(LossScalerOptions options) : options_(options), scale_(options.init_scale) {
  if (!(options.init_scale > 0.0)) fail("DynamicLossScaler: expected init_scale > 0, got ", options.init_scale);
  if (!(options.growth_factor > 1.0)) fail("DynamicLossScaler: expected growth_factor > 1, got ", options.growth_factor);
  if (!(options.backoff_factor > 0.0 && options.backoff_factor < 1.0)) {
    fail("DynamicLossScaler: expected 0 < backoff_factor < 1, got ", options.backoff_factor);
  }
  if (options.growth_interval < 1) {
    fail("DynamicLossScaler: expected growth_interval >= 1, got ", options.growth_interval);
  }
  if (!options.enabled) scale_ = 1.0;
}

Tensor DynamicLossScaler::scale_loss(const Tensor& loss) const {
  check_defined(loss, "DynamicLossScaler::scale_loss", "loss");
  if (!options_.enabled) return loss;
  return mul(loss, scale_);
}

void DynamicLossScaler::unscale(const std::vector<Tensor>& parameters) {
  if (unscaled_) {
    fail("DynamicLossScaler::unscale: expected one unscale per iteration, but the gradients were already unscaled "
         "since the last update()");
  }
  unscaled_ = true;
  found_inf_ = false;
  if (!options_.enabled) return;
  NoGradGuard no_grad;
  // As GradScaler: the reciprocal in double, then rounded to float32.
  const double inverse_scale = static_cast<float>(1.0 / scale_);
  for (const Tensor& param : parameters) {
    Tensor grad = param.grad();
    if (!grad.defined()) continue;
    if (unscale_gradient(grad, inverse_scale)) found_inf_ = true;
  }
}

bool DynamicLossScaler::step(Optimizer& optimizer) {
  if (!unscaled_) unscale(optimizer);
  if (found_inf_) return false;
  optimizer.step();
  return true;
}

void advance_loss_scale(const LossScalerOptions& options, bool found_inf, double& scale, int64_t& growth_tracker) {
  if (found_inf) {
    scale *= options.backoff_factor;
    growth_tracker = 0;
  } else if (++growth_tracker == options.growth_interval) {
    const double grown = scale * options.growth_factor;
    if (std::isfinite(grown)) scale = grown;
    growth_tracker = 0;
  }
}

void DynamicLossScaler::update() {
  if (!options_.enabled) {
    unscaled_ = false;
    return;
  }
  if (!unscaled_) {
    fail("DynamicLossScaler::update: expected unscale() or step() earlier in this iteration (no inf/NaN check was "
         "recorded to update the scale from)");
  }
  advance_loss_scale(options_, found_inf_, scale_, growth_tracker_);
  unscaled_ = false;
  found_inf_ = false;
}

StateDict DynamicLossScaler::state_dict() const {
  return {{"scale", float64_scalar(scale_)}, {"growth_tracker", int64_scalar(growth_tracker_)}};
}

void DynamicLossScaler::load_state_dict(const StateDict& dict) {
  StateDictProblems problems;
  const std::optional<double> scale = problems.number(dict, "scale", kFloat64);
  const std::optional<double> tracker = problems.number(dict, "growth_tracker", kInt64);
  if (scale && !(*scale > 0.0)) problems.add(detail::concat("key 'scale': expected a scale > 0, got ", *scale));
  if (tracker && (*tracker < 0 || *tracker >= static_cast<double>(options_.growth_interval))) {
    problems.add(detail::concat("key 'growth_tracker': expected 0 <= growth_tracker < growth_interval (",
                                options_.growth_interval, "), got ", *tracker));
  }
  for (const auto& [key, tensor] : dict) {
    if (key != "scale" && key != "growth_tracker") problems.add(detail::concat("unexpected key '", key, "'"));
  }
  problems.raise_if_any("DynamicLossScaler.load_state_dict");
  scale_ = *scale;
  growth_tracker_ = static_cast<int64_t>(*tracker);
}

}  // namespace dtrain::optim
