// CpuBackend::adam_update: the fused Adam(W) loop over contiguous float32/float64 memory.
// No fused multiply-adds in this file: the loop must round exactly as optim/adam_update.cpp's
// chain of separate tensor ops does, so both paths give bitwise the same parameters (a test
// checks); CMakeLists.txt compiles this file with -ffp-contract=off.
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/backend.h"
#include "core/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/ops/factory.h"

namespace dtrain::cpu {

namespace {

// Below this many elements a loop runs on one thread: starting a team costs more than it saves.
constexpr int64_t kMinElementsToParallelize = 32768;

// One pass over memory. Every coefficient is rounded to T first and the operations come in the
// same order as in the tensor-op path, so both paths give the same numbers. The three variants
// (L2 or decoupled weight decay, amsgrad) are template parameters, so each instance's loop has
// no branch: GCC vectorises only one of the variants it unswitches a runtime flag into, and
// AdamW's was not that one (it ran scalar, four times slower).
template <typename T, bool L2, bool Decoupled, bool Amsgrad>
void adam_loop(T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq, int64_t n,
               const AdamStepScalars& c) {
  const T beta1 = static_cast<T>(c.beta1);
  const T one_minus_beta1 = static_cast<T>(1.0 - c.beta1);
  const T beta2 = static_cast<T>(c.beta2);
  const T one_minus_beta2 = static_cast<T>(1.0 - c.beta2);
  const T eps = static_cast<T>(c.eps);
  const T weight_decay = static_cast<T>(c.weight_decay);
  const T decay_factor = static_cast<T>(c.decay_factor);
  const T bias_correction2_sqrt = static_cast<T>(c.bias_correction2_sqrt);
  const T negative_step_size = static_cast<T>(-c.step_size);

#pragma omp parallel for simd schedule(static) if (n >= kMinElementsToParallelize)
  for (int64_t i = 0; i < n; ++i) {
    T g = grad[i];
    T p = param[i];
    if constexpr (L2) g = g + p * weight_decay;
    if constexpr (Decoupled) p = p * decay_factor;
    const T m = exp_avg[i] * beta1 + g * one_minus_beta1;
    const T v = exp_avg_sq[i] * beta2 + (g * g) * one_minus_beta2;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    T second_moment = v;
    if constexpr (Amsgrad) {
      const T previous = max_exp_avg_sq[i];
      second_moment = previous < v ? v : previous;
      max_exp_avg_sq[i] = second_moment;
    }
    const T denom = std::sqrt(second_moment) / bias_correction2_sqrt + eps;
    param[i] = p + (m / denom) * negative_step_size;
  }
}

// Calls fn.template operator()<L2, Decoupled, Amsgrad>() with the runtime flags made
// compile-time. L2 and decoupled decay never apply together.
template <typename Fn>
void with_adam_variant(bool l2, bool decoupled, bool amsgrad, Fn&& fn) {
  if (l2) {
    if (amsgrad) fn.template operator()<true, false, true>();
    else fn.template operator()<true, false, false>();
  } else if (decoupled) {
    if (amsgrad) fn.template operator()<false, true, true>();
    else fn.template operator()<false, true, false>();
  } else {
    if (amsgrad) fn.template operator()<false, false, true>();
    else fn.template operator()<false, false, false>();
  }
}

template <typename T>
T* data_or_null(const Tensor& tensor) {
  return tensor.defined() ? tensor.data_ptr<T>() : nullptr;
}

// The loop over one parameter's memory: the master copy when there is one (the gradient then
// converted to the master's dtype first, the parameter receiving the rounded result).
void update_one(const AdamTensors& tensors, const AdamStepScalars& scalars) {
  const Tensor& target = tensors.master.defined() ? tensors.master : tensors.param;
  Tensor grad = tensors.grad;
  if (grad.dtype() != target.dtype()) {
    Tensor converted = empty(target.shape(), {.dtype = target.dtype(), .device = target.device()});
    backend().copy(grad, converted);
    grad = converted;
  }
  auto run = [&]<typename T>() {
    with_adam_variant(scalars.l2, scalars.decoupled, tensors.max_exp_avg_sq.defined(), [&]<bool L2, bool Decoupled, bool Amsgrad>() {
      adam_loop<T, L2, Decoupled, Amsgrad>(target.data_ptr<T>(), grad.data_ptr<T>(), tensors.exp_avg.data_ptr<T>(),
                                           tensors.exp_avg_sq.data_ptr<T>(), data_or_null<T>(tensors.max_exp_avg_sq),
                                           target.numel(), scalars);
    });
  };
  if (target.dtype() == kFloat32) run.template operator()<float>();
  else if (target.dtype() == kFloat64) run.template operator()<double>();
  else fail("internal: the CPU adam_update kernel takes float32 or float64 parameters or masters, got ", target.dtype());
  if (tensors.master.defined()) {
    Tensor param = tensors.param;
    backend().copy(tensors.master, param);
  }
}

}  // namespace

void CpuBackend::adam_update(const std::vector<AdamTensors>& parameters, const AdamStepScalars& scalars) {
  // Every parameter is checked before any is updated, so a refused one leaves all unchanged.
  for (const AdamTensors& t : parameters) {
    require_kernel_support(*this,
                           {.kernel = FusedKernel::AdamUpdate,
                            .tensors = {t.param, t.grad, t.exp_avg, t.exp_avg_sq, t.max_exp_avg_sq, t.master}},
                           "adam_update");
  }
  for (const AdamTensors& tensors : parameters) update_one(tensors, scalars);
}

}  // namespace dtrain::cpu
