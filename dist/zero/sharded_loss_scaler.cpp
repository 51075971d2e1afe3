#include "dist/zero/sharded_loss_scaler.h"

#include <cmath>
#include <vector>

#include "core/grad_mode.h"
#include "core/ops/elementwise.h"
#include "core/ops/factory.h"
#include "core/ops/reduce.h"

namespace dtrain::dist {

ShardedLossScaler::ShardedLossScaler(optim::LossScalerOptions options, bool enabled)
    : options_(options), enabled_(enabled && options.enabled), scale_(options.init_scale) {
  // The same checks as the single-process scaler.
  optim::DynamicLossScaler check(options);
  if (!enabled_) scale_ = 1.0;
}

double ShardedLossScaler::inverse_scale() const { return static_cast<float>(1.0 / scale_); }

bool ShardedLossScaler::agree_on_overflow(ProcessGroup& group, bool local_overflow) {
  Tensor flag = from_vector(std::vector<int32_t>{local_overflow ? 1 : 0});
  if (group.size() > 1) group.all_reduce(flag, ReduceOp::Max)->wait();
  return flag.item() != 0.0;
}

void ShardedLossScaler::update(bool found_inf) {
  if (!enabled_) return;
  optim::advance_loss_scale(options_, found_inf, scale_, growth_tracker_);
}

void ShardedLossScaler::load(double scale, int64_t growth_tracker) {
  if (!(scale > 0.0) || !std::isfinite(scale)) fail("ZeroOptimizer: expected a saved loss scale > 0, got ", scale);
  if (growth_tracker < 0 || growth_tracker >= options_.growth_interval) {
    fail("ZeroOptimizer: expected a saved growth tracker from 0 to ", options_.growth_interval - 1, ", got ",
         growth_tracker);
  }
  scale_ = scale;
  growth_tracker_ = growth_tracker;
}

bool has_non_finite(const Tensor& tensor) {
  if (tensor.numel() == 0) return false;
  NoGradGuard no_grad;
  if (tensor.is_contiguous() && tensor.device().is_cpu() && tensor.dtype() == kFloat32) {
    const float* data = tensor.data_ptr<float>();
    int bad = 0;
    for (int64_t i = 0; i < tensor.numel(); ++i) bad |= std::isfinite(data[i]) ? 0 : 1;
    return bad != 0;
  }
  // x * 0 is 0 for finite x and NaN for inf or NaN.
  return std::isnan(sum(mul(tensor.to(kFloat64), 0.0)).item());
}

}  // namespace dtrain::dist
