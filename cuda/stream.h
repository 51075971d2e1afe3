#pragma once
// Devices, streams and events. Work for a device is queued on this thread's current stream for
// it: the default (legacy) stream, which orders itself with every other blocking stream, unless a
// StreamGuard picks another. The caching allocator keeps free lists per stream, so a tensor's
// memory is reused in the order its stream runs.
//
//   cuda::Stream side(0);
//   {
//     cuda::StreamGuard on_side(side);   // work for cuda:0 from this thread now goes to side
//     y = x * 2;
//   }
//   cuda::Event done;
//   done.record(side.handle());
//   done.block(cuda::current_stream(0));  // the default stream waits for side's work so far
#include <cuda_runtime.h>

#include "cuda/export.h"

namespace dtrain::cuda {

inline constexpr int kMaxDevices = 16;  // as the byte ledgers in core/allocator.cpp

// Makes index the current device of this thread for the guard's life.
class DTRAIN_CUDA_EXPORT DeviceGuard {
 public:
  explicit DeviceGuard(int index);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_;
};

// The stream this thread queues device's work on.
DTRAIN_CUDA_EXPORT cudaStream_t current_stream(int device);

// An owned stream on one device (non-blocking with respect to the default stream only if asked).
class DTRAIN_CUDA_EXPORT Stream {
 public:
  explicit Stream(int device, bool non_blocking = false);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t handle() const { return handle_; }
  int device() const { return device_; }
  void synchronize() const;

 private:
  cudaStream_t handle_ = nullptr;
  int device_;
};

// Makes stream the current one for its device on this thread for the guard's life.
class DTRAIN_CUDA_EXPORT StreamGuard {
 public:
  explicit StreamGuard(const Stream& stream);
  ~StreamGuard();
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  int device_;
  cudaStream_t previous_;
};

// A marker in a stream's queue: wait for it on the host, or make another stream wait for it.
class DTRAIN_CUDA_EXPORT Event {
 public:
  explicit Event(bool timing = false);
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record(cudaStream_t stream);
  void synchronize() const;
  bool query() const;                // true once the work before the record is done
  void block(cudaStream_t stream) const;  // stream's later work waits for the event
  float elapsed_ms(const Event& end) const;  // both recorded with timing = true
  cudaEvent_t handle() const { return handle_; }

 private:
  cudaEvent_t handle_ = nullptr;
};

}  // namespace dtrain::cuda
