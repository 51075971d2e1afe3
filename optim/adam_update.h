#pragma once
// The Adam update of one parameter, shared by Adam (weight decay as L2 added to the gradient)
// and AdamW (decoupled weight decay). It follows PyTorch's documented algorithm and its
// single-tensor code path operation for operation:
//   g = grad (+ weight_decay * p, L2 only)          p = p * (1 - lr * weight_decay)  (decoupled only)
//   m = beta1 * m + (1 - beta1) * g                 v = beta2 * v + (1 - beta2) * g * g
//   v_max = max(v_max, v)  (amsgrad; v_max replaces v below)
//   denom = sqrt(v) / sqrt(1 - beta2^t) + eps       p = p - lr / (1 - beta1^t) * m / denom
// which is the documented p - lr * m_hat / (sqrt(v_hat) + eps) with eps added after the sqrt.
// Two paths compute it: the device's fused kernel (Backend::adam_update) where the kernel table
// says it takes the parameter (Backend::supports: contiguous float32/float64 on the CPU, any
// floating dtype on CUDA with float32 state for 16-bit parameters), and chains of in-place tensor
// ops for anything else (strided tensors, other state dtypes).
#include <cstdint>
#include <vector>

#include "core/backend.h"
#include "core/tensor.h"

namespace dtrain::optim {

enum class WeightDecayKind { L2, Decoupled };

struct AdamHyperParameters {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  WeightDecayKind weight_decay_kind = WeightDecayKind::L2;
  bool amsgrad = false;
};

struct AdamState {
  Tensor exp_avg;
  Tensor exp_avg_sq;
  Tensor max_exp_avg_sq;  // defined only with amsgrad
};

// The step's numbers for the device kernels (Backend::adam_update), computed once in double.
AdamStepScalars adam_step_scalars(const AdamHyperParameters& hyper, int64_t step);

// Applies update number step (1 on the first) to param in place. allow_fused permits the device's
// fused kernel where the kernel table takes the tensors.
void adam_update(const Tensor& param, const Tensor& grad, const AdamState& state, const AdamHyperParameters& hyper,
                 int64_t step, bool allow_fused);

// One parameter of adam_update_many, at its own update number.
struct AdamUpdateItem {
  Tensor param;
  Tensor grad;
  AdamState state;
  int64_t step = 0;
};
// adam_update for many parameters with one set of hyper-parameters: those the device's fused
// kernel takes go to it together, one Backend::adam_update call per device and update number
// (on CUDA one multi-tensor launch, not one per parameter); the rest take the tensor-op path. The
// results equal adam_update's, parameter by parameter, bit for bit.
void adam_update_many(const std::vector<AdamUpdateItem>& items, const AdamHyperParameters& hyper, bool allow_fused);

}  // namespace dtrain::optim
