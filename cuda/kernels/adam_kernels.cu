// CudaBackend::adam_update: one launch updates up to kTensorsPerLaunch parameters (blockIdx.y picks
// the parameter, a grid stride over x walks its elements). The formulas and their order are the
// CPU loop's (core/cpu/adam_kernels.cpp) with every multiply, add, divide and square root
// explicitly rounded (the __f*_rn / __d*_rn intrinsics), so nvcc fuses no multiply-add and a
// float32 or float64 step rounds as the CPU's does. 16-bit parameters keep float32 state; with a
// float32 master copy the step runs on the master and the parameter receives its rounded value.
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "core/backend.h"
#include "cuda/cuda_backend.h"
#include "cuda/kernels/device_math.cuh"
#include "cuda/kernels/element.cuh"
#include "cuda/kernels/launch.cuh"

namespace dtrain::cuda {
namespace {

constexpr int kTensorsPerLaunch = 24;  // keeps the launch arguments well under 4 KiB

struct AdamPointers {
  void* param[kTensorsPerLaunch];
  const void* grad[kTensorsPerLaunch];
  void* exp_avg[kTensorsPerLaunch];
  void* exp_avg_sq[kTensorsPerLaunch];
  void* max_exp_avg_sq[kTensorsPerLaunch];  // null without amsgrad
  void* master[kTensorsPerLaunch];          // null without a master copy
  int64_t numel[kTensorsPerLaunch];
};

// The step's coefficients, each rounded once to the state type S as the CPU rounds them to T.
template <typename S>
struct AdamCoefficients {
  S beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay, decay_factor, bias_correction2_sqrt,
      negative_step_size;
  bool l2, decoupled;
};

using math::add_rn;
using math::div_rn;
using math::mul_rn;
using math::sqrt_rn;

// P: the parameter's stored type; S = compute_t<P>: the state's (and master's) type.
template <typename P>
__global__ void adam_kernel(AdamPointers pointers, AdamCoefficients<compute_t<P>> c) {
  using S = compute_t<P>;
  const int tensor = blockIdx.y;
  const int64_t n = pointers.numel[tensor];
  P* param = static_cast<P*>(pointers.param[tensor]);
  const P* grad = static_cast<const P*>(pointers.grad[tensor]);
  S* exp_avg = static_cast<S*>(pointers.exp_avg[tensor]);
  S* exp_avg_sq = static_cast<S*>(pointers.exp_avg_sq[tensor]);
  S* max_exp_avg_sq = static_cast<S*>(pointers.max_exp_avg_sq[tensor]);
  S* master = static_cast<S*>(pointers.master[tensor]);
  for (int64_t i = global_thread(); i < n; i += grid_stride()) {
    S g = Element<P>::load(grad[i]);
    S p = master != nullptr ? master[i] : Element<P>::load(param[i]);
    if (c.l2) g = add_rn(g, mul_rn(p, c.weight_decay));
    if (c.decoupled) p = mul_rn(p, c.decay_factor);
    const S m = add_rn(mul_rn(exp_avg[i], c.beta1), mul_rn(g, c.one_minus_beta1));
    const S v = add_rn(mul_rn(exp_avg_sq[i], c.beta2), mul_rn(mul_rn(g, g), c.one_minus_beta2));
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    S second_moment = v;
    if (max_exp_avg_sq != nullptr) {
      const S previous = max_exp_avg_sq[i];
      second_moment = previous < v ? v : previous;
      max_exp_avg_sq[i] = second_moment;
    }
    const S denom = add_rn(div_rn(sqrt_rn(second_moment), c.bias_correction2_sqrt), c.eps);
    const S updated = add_rn(p, mul_rn(div_rn(m, denom), c.negative_step_size));
    if (master != nullptr) master[i] = updated;
    param[i] = Element<P>::store(updated);
  }
}

template <typename S>
AdamCoefficients<S> coefficients_for(const AdamStepScalars& scalars) {
  return AdamCoefficients<S>{static_cast<S>(scalars.beta1),
                             static_cast<S>(1.0 - scalars.beta1),
                             static_cast<S>(scalars.beta2),
                             static_cast<S>(1.0 - scalars.beta2),
                             static_cast<S>(scalars.eps),
                             static_cast<S>(scalars.weight_decay),
                             static_cast<S>(scalars.decay_factor),
                             static_cast<S>(scalars.bias_correction2_sqrt),
                             static_cast<S>(-scalars.step_size),
                             scalars.l2,
                             scalars.decoupled};
}

// Raises unless the parameter's tensors are as Backend::adam_update states.
void check_parameter(const AdamTensors& tensors, size_t position) {
  const Tensor& param = tensors.param;
  const DType state_dtype = statistics_dtype(param.dtype());
  auto check = [&](const Tensor& tensor, const char* name, DType expected) {
    if (!tensor.defined()) return;
    if (tensor.device() != param.device() || tensor.dtype() != expected || tensor.numel() != param.numel() ||
        !tensor.is_contiguous()) {
      fail("internal: CUDA adam_update parameter ", position, ": expected a contiguous ", name, " of ", param.numel(),
           " ", expected, " elements on ", param.device(), ", got ", tensor.numel(), " ", tensor.dtype(), " on ",
           tensor.device());
    }
  };
  check(param, "param", param.dtype());
  check(tensors.grad, "grad", param.dtype());
  check(tensors.exp_avg, "exp_avg", state_dtype);
  check(tensors.exp_avg_sq, "exp_avg_sq", state_dtype);
  check(tensors.max_exp_avg_sq, "max_exp_avg_sq", state_dtype);
  check(tensors.master, "master", state_dtype);
  if (!tensors.grad.defined() || !tensors.exp_avg.defined() || !tensors.exp_avg_sq.defined()) {
    fail("internal: CUDA adam_update parameter ", position, " lacks its grad, exp_avg or exp_avg_sq");
  }
}

template <typename P>
void launch(const std::vector<const AdamTensors*>& batch, const AdamStepScalars& scalars, cudaStream_t stream) {
  AdamPointers pointers{};
  int64_t largest = 0;
  for (size_t k = 0; k < batch.size(); ++k) {
    const AdamTensors& tensors = *batch[k];
    pointers.param[k] = tensors.param.data();
    pointers.grad[k] = tensors.grad.data();
    pointers.exp_avg[k] = tensors.exp_avg.data();
    pointers.exp_avg_sq[k] = tensors.exp_avg_sq.data();
    pointers.max_exp_avg_sq[k] = tensors.max_exp_avg_sq.defined() ? tensors.max_exp_avg_sq.data() : nullptr;
    pointers.master[k] = tensors.master.defined() ? tensors.master.data() : nullptr;
    pointers.numel[k] = tensors.param.numel();
    largest = std::max(largest, pointers.numel[k]);
  }
  // Enough blocks for the largest parameter, capped: each y-row of the grid walks its own tensor.
  const dim3 grid(std::min<unsigned int>(blocks_for(largest), 2048u), static_cast<unsigned int>(batch.size()));
  adam_kernel<P><<<grid, kThreads, 0, stream>>>(pointers, coefficients_for<compute_t<P>>(scalars));
  check_launch("adam_update", batch.front()->param.dtype());
}

}  // namespace

void CudaBackend::adam_update(const std::vector<AdamTensors>& parameters, const AdamStepScalars& scalars) {
  // Every parameter is checked before any is updated, so a refused one leaves all unchanged.
  for (const AdamTensors& t : parameters) {
    require_kernel_support(*this,
                           {.kernel = FusedKernel::AdamUpdate,
                            .tensors = {t.param, t.grad, t.exp_avg, t.exp_avg_sq, t.max_exp_avg_sq, t.master}},
                           "adam_update");
  }
  // Batches of consecutive parameters that share a device and dtype, kTensorsPerLaunch at most.
  size_t begin = 0;
  while (begin < parameters.size()) {
    const Tensor& first = parameters[begin].param;
    std::vector<const AdamTensors*> batch;
    size_t end = begin;
    while (end < parameters.size() && batch.size() < static_cast<size_t>(kTensorsPerLaunch) &&
           parameters[end].param.device() == first.device() && parameters[end].param.dtype() == first.dtype()) {
      check_parameter(parameters[end], end);
      if (parameters[end].param.numel() > 0) batch.push_back(&parameters[end]);
      ++end;
    }
    if (!batch.empty()) {
      LaunchContext context(first.device());
      visit_dtype(first.dtype(), [&]<typename P>() {
        if constexpr (std::is_floating_point_v<compute_t<P>>) launch<P>(batch, scalars, context.stream);
        else fail("internal: CUDA adam_update takes floating parameters, got ", first.dtype());
      });
    }
    begin = end;
  }
}

}  // namespace dtrain::cuda
