#pragma once
// Dynamic loss scaling for ZeRO in float16, with the rules of optim::DynamicLossScaler (scale the
// loss before backward, skip the step and back off when a gradient is inf or NaN, grow after
// growth_interval clean steps). The difference is where the check happens: each rank sees only
// its gradient shard, so the ranks all-reduce (max) an overflow flag and all skip, or all step,
// together.
#include <cstdint>

#include "core/tensor.h"
#include "dist/process_group.h"
#include "optim/loss_scaler.h"

namespace dtrain::dist {

class ShardedLossScaler {
 public:
  // enabled: float16 compute (bfloat16 and fp32 need no scaling: scale 1, never skips).
  ShardedLossScaler(optim::LossScalerOptions options, bool enabled);

  bool enabled() const { return enabled_; }
  double scale() const { return scale_; }
  int64_t growth_tracker() const { return growth_tracker_; }
  // As GradScaler: the reciprocal in double, rounded to float32.
  double inverse_scale() const;

  // Whether any rank of group saw an inf or NaN (local_overflow on this one): one all-reduce.
  static bool agree_on_overflow(ProcessGroup& group, bool local_overflow);
  // Ends an iteration: back off after an overflow, else count towards growth.
  void update(bool found_inf);
  // Restores a saved scale (for checkpoints); raises for an invalid one.
  void load(double scale, int64_t growth_tracker);

 private:
  optim::LossScalerOptions options_;
  bool enabled_;
  double scale_;
  int64_t growth_tracker_ = 0;
};

// Whether tensor holds an inf or NaN.
bool has_non_finite(const Tensor& tensor);

}  // namespace dtrain::dist
