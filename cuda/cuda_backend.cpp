#include "cuda/cuda_backend.h"

namespace dtrain::cuda {

Backend& backend() {
  static auto* instance = new CudaBackend();  // never destroyed, as the allocator
  return *instance;
}

}  // namespace dtrain::cuda
