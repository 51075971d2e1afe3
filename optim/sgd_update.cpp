// No fused multiply-adds in this file: the fused loop must round exactly as the chain of
// separate tensor ops does, so that both paths give bitwise the same parameters (a test checks); CMakeLists.txt compiles
// this file with -ffp-contract=off so no multiply-add is fused.
#include "optim/sgd_update.h"

#include <cstdint>

#include "core/ops/elementwise.h"
#include "optim/fused_cpu.h"

namespace dtrain::optim {

namespace {

// One pass over memory, coefficients rounded to T and operations in the tensor-op path's order.
template <typename T>
void sgd_loop(T* param, const T* grad, T* momentum_buffer, bool first_step, int64_t n, const SgdHyperParameters& hyper) {
  const T weight_decay = static_cast<T>(hyper.weight_decay);
  const T momentum = static_cast<T>(hyper.momentum);
  const T one_minus_dampening = static_cast<T>(1.0 - hyper.dampening);
  const T negative_lr = static_cast<T>(-hyper.lr);
  const bool decay = hyper.weight_decay != 0.0;
  const bool nesterov = hyper.nesterov;
  const bool has_momentum = momentum_buffer != nullptr;

#pragma omp parallel for simd schedule(static) if (n >= kMinElementsToParallelize)
  for (int64_t i = 0; i < n; ++i) {
    const T p = param[i];
    T g = grad[i];
    if (decay) g = g + p * weight_decay;
    if (has_momentum) {
      const T b = first_step ? g : momentum_buffer[i] * momentum + g * one_minus_dampening;
      momentum_buffer[i] = b;
      g = nesterov ? g + b * momentum : b;
    }
    param[i] = p + g * negative_lr;
  }
}

void sgd_tensor_ops(const Tensor& param_handle, const Tensor& grad, const Tensor& momentum_buffer, bool first_step,
                    const SgdHyperParameters& hyper) {
  Tensor param = param_handle;
  Tensor g = hyper.weight_decay != 0.0 ? add(grad, param, hyper.weight_decay) : grad;
  if (momentum_buffer.defined()) {
    Tensor buffer = momentum_buffer;
    if (first_step) buffer.copy_(g);
    else buffer.mul_(hyper.momentum).add_(g, 1.0 - hyper.dampening);
    g = hyper.nesterov ? add(g, buffer, hyper.momentum) : buffer;
  }
  param.add_(g, -hyper.lr);
}

}  // namespace

void sgd_update(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, bool first_step,
                const SgdHyperParameters& hyper, bool allow_fused) {
  if (allow_fused && fusable_on_cpu({param, grad, momentum_buffer})) {
    auto run = [&]<typename T>() {
      sgd_loop<T>(fused_data<T>(param), fused_data<T>(grad), fused_data<T>(momentum_buffer), first_step, param.numel(),
                  hyper);
    };
    if (param.dtype() == kFloat32) run.template operator()<float>();
    else run.template operator()<double>();
    // Autograd refuses a saved tensor whose version moved on; a raw write must say it happened.
    param.storage()->bump_version();
    return;
  }
  sgd_tensor_ops(param, grad, momentum_buffer, first_step, hyper);
}

}  // namespace dtrain::optim
