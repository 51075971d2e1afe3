// CpuBackend::supports, the CPU's answer to the kernel table's capability question, and the two
// fused entries the CPU never takes (each raises, as every fused entry does for a declined case).
#include "core/backend.h"
#include "core/cpu/cpu_backend.h"
#include "core/error.h"

namespace dtrain::cpu {

KernelSupport CpuBackend::supports(const KernelCase& query) {
  switch (query.kernel) {
    case FusedKernel::LayerNorm:
    case FusedKernel::AddLayerNorm:
    case FusedKernel::CrossEntropy:
    case FusedKernel::AdamUpdate:
      return fused_training_kernel_support(query, DeviceType::CPU, /*takes_16_bit=*/false);
    case FusedKernel::Attention:
      check_kernel_case_arity(query);
      return kernel_declines_case("the CPU has no fused attention: matmul, causal_softmax and matmul are its kernels");
    case FusedKernel::Convolution2d:
      check_kernel_case_arity(query);
      return kernel_declines_case("the CPU has no convolution kernel: im2col and matmul are its kernels");
  }
  fail("CpuBackend::supports: unknown fused kernel ", static_cast<int>(query.kernel));
}

void CpuBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, double, Tensor&, Tensor&) {
  require_kernel_support(*this, {.kernel = FusedKernel::Attention, .tensors = {q, k, v}}, "attention");
}

void CpuBackend::attention_backward(const Tensor&, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor&,
                                    const Tensor&, double, Tensor&, Tensor&, Tensor&) {
  require_kernel_support(*this, {.kernel = FusedKernel::Attention, .tensors = {q, k, v}}, "attention_backward");
}

void CpuBackend::convolution2d(const Tensor& x, const Tensor& weight, Convolution2d geometry, Tensor&) {
  require_kernel_support(*this, {.kernel = FusedKernel::Convolution2d, .tensors = {x, weight}, .geometry = geometry},
                         "convolution2d");
}

void CpuBackend::convolution2d_backward(const Tensor&, const Tensor& x, const Tensor& weight, Convolution2d geometry,
                                        Tensor&, Tensor&) {
  require_kernel_support(*this, {.kernel = FusedKernel::Convolution2d, .tensors = {x, weight}, .geometry = geometry},
                         "convolution2d_backward");
}

}  // namespace dtrain::cpu
