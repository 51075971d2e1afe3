#ifdef DTRAIN_WITH_CUDNN

#include "cuda/cudnn_handle.h"

#include <array>

#include "cuda/stream.h"

namespace dtrain::cuda {

cudnnHandle_t cudnn_handle(int device) {
  thread_local std::array<cudnnHandle_t, kMaxDevices> handles{};
  thread_local std::array<bool, kMaxDevices> tried{};
  if (!tried[device]) {
    tried[device] = true;
    DeviceGuard guard(device);
    if (cudnnCreate(&handles[device]) != CUDNN_STATUS_SUCCESS) handles[device] = nullptr;
  }
  return handles[device];
}

}  // namespace dtrain::cuda

#endif  // DTRAIN_WITH_CUDNN
