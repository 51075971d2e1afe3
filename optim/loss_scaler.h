#pragma once
// Dynamic loss scaling for float16 training, as torch.cuda.amp.GradScaler (on any device: it
// uses tensor ops, with a fused loop for contiguous CPU gradients). float16 gradients of a small
// loss underflow to zero, so the loss is multiplied by a large scale before backward and the
// gradients divided by it before the step. When any gradient came out inf or NaN the scale was
// too large: that step is skipped and the scale backs off; after growth_interval clean steps in
// a row it grows again.
//
//   DynamicLossScaler scaler;
//   scaler.scale_loss(loss).backward();
//   scaler.unscale(optimizer);              // optional: only needed to clip true gradients
//   clip_grad_norm(optimizer.parameters(), 1.0);
//   scaler.step(optimizer);                 // optimizer.step() unless a gradient was inf/NaN
//   scaler.update();                        // back off or grow the scale
//
// One scaler serves one optimizer.
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "optim/optimizer.h"
#include "optim/state_dict.h"

namespace dtrain::optim {

struct LossScalerOptions {
  double init_scale = 65536.0;     // 2^16
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;  // clean steps in a row before the scale grows
  bool enabled = true;             // off: scale 1, never skips (the same loop serves fp32/bf16)
};

// The scale's rule at the end of an iteration, shared with ZeRO's sharded scaler: after an inf/NaN
// the scale is multiplied by backoff_factor and the clean-step count restarts; after
// growth_interval clean steps in a row it is multiplied by growth_factor (unless that overflows).
void advance_loss_scale(const LossScalerOptions& options, bool found_inf, double& scale, int64_t& growth_tracker);

class DynamicLossScaler {
 public:
  explicit DynamicLossScaler(LossScalerOptions options = {});

  double scale() const { return scale_; }
  int64_t growth_tracker() const { return growth_tracker_; }
  bool enabled() const { return options_.enabled; }
  // Whether the gradients unscaled in this iteration held an inf or NaN.
  bool found_inf() const { return found_inf_; }

  // loss * scale; call backward on this.
  Tensor scale_loss(const Tensor& loss) const;

  // Divides every defined gradient by the scale, in place, and records whether any held an
  // inf or NaN. At most once per iteration (between two update() calls).
  void unscale(const std::vector<Tensor>& parameters);
  void unscale(Optimizer& optimizer) { unscale(optimizer.parameters()); }

  // Unscales (unless done in this iteration), then runs optimizer.step() only if every
  // gradient was finite. Returns whether the optimizer stepped.
  bool step(Optimizer& optimizer);

  // Ends the iteration: after an inf/NaN the scale is multiplied by backoff_factor, otherwise
  // after growth_interval finite iterations in a row by growth_factor.
  void update();

  // "scale" (float64, 0-d) and "growth_tracker" (int64, 0-d), for checkpoints.
  StateDict state_dict() const;
  void load_state_dict(const StateDict& dict);

 private:
  LossScalerOptions options_;
  double scale_;
  int64_t growth_tracker_ = 0;
  bool unscaled_ = false;  // in this iteration
  bool found_inf_ = false;
};

}  // namespace dtrain::optim
