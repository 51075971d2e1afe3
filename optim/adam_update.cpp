// No fused multiply-adds in this file: the fused loop must round exactly as the chain of
// separate tensor ops does, so that both paths give bitwise the same parameters (a test checks); CMakeLists.txt compiles
// this file with -ffp-contract=off so no multiply-add is fused.
#include "optim/adam_update.h"

#include <cmath>

#include "core/ops/elementwise.h"
#include "core/ops/unary.h"
#include "optim/fused_cpu.h"

namespace dtrain::optim {

namespace {

// The per-step numbers, computed once in double as PyTorch computes them in Python floats.
struct AdamCoefficients {
  double step_size;             // lr / (1 - beta1^t)
  double bias_correction2_sqrt; // sqrt(1 - beta2^t)
  double decay_factor;          // 1 - lr * weight_decay (decoupled)
  bool l2 = false;
  bool decoupled = false;
};

AdamCoefficients coefficients(const AdamHyperParameters& hyper, int64_t step) {
  const double t = static_cast<double>(step);
  AdamCoefficients c;
  c.step_size = hyper.lr / (1.0 - std::pow(hyper.beta1, t));
  c.bias_correction2_sqrt = std::sqrt(1.0 - std::pow(hyper.beta2, t));
  c.decay_factor = 1.0 - hyper.lr * hyper.weight_decay;
  c.l2 = hyper.weight_decay != 0.0 && hyper.weight_decay_kind == WeightDecayKind::L2;
  c.decoupled = hyper.weight_decay != 0.0 && hyper.weight_decay_kind == WeightDecayKind::Decoupled;
  return c;
}

// One pass over memory. Every coefficient is rounded to T first and the operations come in the
// same order as in the tensor-op path below, so both paths give the same numbers. The three
// variants (L2 or decoupled weight decay, amsgrad) are template parameters, so each instance's
// loop has no branch: GCC vectorises only one of the variants it unswitches a runtime flag into,
// and AdamW's was not that one (it ran scalar, four times slower).
template <typename T, bool L2, bool Decoupled, bool Amsgrad>
void adam_loop(T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq, int64_t n,
               const AdamHyperParameters& hyper, const AdamCoefficients& c) {
  const T beta1 = static_cast<T>(hyper.beta1);
  const T one_minus_beta1 = static_cast<T>(1.0 - hyper.beta1);
  const T beta2 = static_cast<T>(hyper.beta2);
  const T one_minus_beta2 = static_cast<T>(1.0 - hyper.beta2);
  const T eps = static_cast<T>(hyper.eps);
  const T weight_decay = static_cast<T>(hyper.weight_decay);
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

void adam_tensor_ops(const Tensor& param_handle, const Tensor& grad, const AdamState& state,
                     const AdamHyperParameters& hyper, const AdamCoefficients& c) {
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

void adam_update(const Tensor& param, const Tensor& grad, const AdamState& state, const AdamHyperParameters& hyper,
                 int64_t step, bool allow_fused) {
  const AdamCoefficients c = coefficients(hyper, step);
  if (allow_fused && fusable_on_cpu({param, grad, state.exp_avg, state.exp_avg_sq, state.max_exp_avg_sq})) {
    auto run = [&]<typename T>() {
      const bool amsgrad = state.max_exp_avg_sq.defined();
      with_adam_variant(c.l2, c.decoupled, amsgrad, [&]<bool L2, bool Decoupled, bool Amsgrad>() {
        adam_loop<T, L2, Decoupled, Amsgrad>(fused_data<T>(param), fused_data<T>(grad), fused_data<T>(state.exp_avg),
                                             fused_data<T>(state.exp_avg_sq), fused_data<T>(state.max_exp_avg_sq),
                                             param.numel(), hyper, c);
      });
    };
    if (param.dtype() == kFloat32) run.template operator()<float>();
    else run.template operator()<double>();
    // Autograd refuses a saved tensor whose version moved on; a raw write must say it happened.
    param.storage()->bump_version();
    return;
  }
  adam_tensor_ops(param, grad, state, hyper, c);
}

}  // namespace dtrain::optim
