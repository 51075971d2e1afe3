#include "cuda/stream.h"

#include <array>

#include "core/error.h"
#include "core/profiler_recorder.h"
#include "cuda/check.h"

namespace dtrain::cuda {
namespace {

// nullptr is the default stream.
thread_local std::array<cudaStream_t, kMaxDevices> current_streams{};

void check_device_index(int device) {
  if (device < 0 || device >= kMaxDevices) fail("CUDA device index ", device, " is out of range (0 to ", kMaxDevices - 1, ")");
}

}  // namespace

DeviceGuard::DeviceGuard(int index) {
  DTRAIN_CUDA_CHECK(cudaGetDevice(&previous_));
  if (index != previous_) DTRAIN_CUDA_CHECK(cudaSetDevice(index));
}

DeviceGuard::~DeviceGuard() {
  int now = previous_;
  cudaGetDevice(&now);
  if (now != previous_) cudaSetDevice(previous_);  // a destructor must not raise
}

cudaStream_t current_stream(int device) {
  check_device_index(device);
  return current_streams[device];
}

Stream::Stream(int device, bool non_blocking) : device_(device) {
  check_device_index(device);
  DeviceGuard guard(device);
  DTRAIN_CUDA_CHECK(cudaStreamCreateWithFlags(&handle_, non_blocking ? cudaStreamNonBlocking : cudaStreamDefault));
}

Stream::~Stream() {
  if (handle_ != nullptr) cudaStreamDestroy(handle_);  // waits for nothing: queued work still completes
}

void Stream::synchronize() const {
  profiler::detail::host_synchronization("stream synchronize");
  DTRAIN_CUDA_CHECK(cudaStreamSynchronize(handle_));
}

StreamGuard::StreamGuard(const Stream& stream) : device_(stream.device()), previous_(current_streams[stream.device()]) {
  current_streams[device_] = stream.handle();
}

StreamGuard::~StreamGuard() { current_streams[device_] = previous_; }

Event::Event(bool timing) {
  DTRAIN_CUDA_CHECK(cudaEventCreateWithFlags(&handle_, timing ? cudaEventDefault : cudaEventDisableTiming));
}

Event::~Event() {
  if (handle_ != nullptr) cudaEventDestroy(handle_);
}

void Event::record(cudaStream_t stream) { DTRAIN_CUDA_CHECK(cudaEventRecord(handle_, stream)); }
void Event::synchronize() const {
  profiler::detail::host_synchronization("event synchronize");
  DTRAIN_CUDA_CHECK(cudaEventSynchronize(handle_));
}

bool Event::query() const {
  cudaError_t status = cudaEventQuery(handle_);
  if (status == cudaErrorNotReady) {
    cudaGetLastError();
    return false;
  }
  DTRAIN_CUDA_CHECK(status);
  return true;
}

void Event::block(cudaStream_t stream) const { DTRAIN_CUDA_CHECK(cudaStreamWaitEvent(stream, handle_, 0)); }

float Event::elapsed_ms(const Event& end) const {
  float milliseconds = 0.0f;
  DTRAIN_CUDA_CHECK(cudaEventElapsedTime(&milliseconds, handle_, end.handle_));
  return milliseconds;
}

}  // namespace dtrain::cuda
