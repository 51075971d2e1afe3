// CudaBackend::supports, the CUDA table's answer to the kernel table's capability question.
#include "core/backend.h"
#include "core/error.h"
#include "cuda/cuda_backend.h"

namespace dtrain::cuda {

KernelSupport CudaBackend::supports(const KernelCase& query) {
  switch (query.kernel) {
    case FusedKernel::LayerNorm:
    case FusedKernel::AddLayerNorm:
    case FusedKernel::CrossEntropy:
    case FusedKernel::AdamUpdate:
      return fused_training_kernel_support(query, DeviceType::CUDA, /*takes_16_bit=*/true);
    case FusedKernel::Attention:
      check_kernel_case_arity(query);
      return attention_support(query.tensors[0], query.tensors[1], query.tensors[2]);
    case FusedKernel::Convolution2d:
      check_kernel_case_arity(query);
      return convolution_support(query.tensors[0], query.tensors[1], query.geometry);
  }
  fail("CudaBackend::supports: unknown fused kernel ", static_cast<int>(query.kernel));
}

}  // namespace dtrain::cuda
