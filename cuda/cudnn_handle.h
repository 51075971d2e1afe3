#pragma once
// The cuDNN handle of each device for the calling thread, shared by every cuDNN path
// (cuda/convolution.cpp, cuda/attention.cpp). Part of builds with cuDNN only (DTRAIN_WITH_CUDNN).
//
//   cudnnHandle_t handle = cudnn_handle(x.device().index);
//   if (handle == nullptr) return false;  // cuDNN cannot start here: take the plain path
//   DTRAIN_CUDNN_OR_DECLINE(cudnnSetStream(handle, current_stream(x.device().index)));
#include <cudnn.h>

namespace dtrain::cuda {

// Created on first use and never destroyed (the driver may be gone when threads and statics end);
// null when cuDNN cannot start on the device, and then every cuDNN path declines.
cudnnHandle_t cudnn_handle(int device);

}  // namespace dtrain::cuda
