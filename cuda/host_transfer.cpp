// CudaBackend::copy_to_host and copy_from_host through pinned staging buffers.
//
// The host side of a tensor is ordinary (pageable) memory. The DMA engine reads and writes only
// pinned memory, so every transfer is staged; doing the staging here, through a few pinned
// buffers per device, lets host copies and DMA overlap and lets a host-to-device copy return
// before its last DMA has finished (the buffer's event says when it may be reused). A
// device-to-host copy returns once the bytes are in the host tensor. Small transfers go straight
// through cudaMemcpyAsync, which stages them itself.
#include <algorithm>
#include <array>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>

#include "core/error.h"
#include "core/profiler_recorder.h"
#include "cuda/check.h"
#include "cuda/cuda_backend.h"
#include "cuda/stream.h"

namespace dtrain::cuda {
namespace {

constexpr size_t kDirectTransferBytes = size_t{256} << 10;  // below: cudaMemcpyAsync stages it itself
constexpr size_t kStagingChunk = size_t{8} << 20;
constexpr int kStagingBuffers = 4;

struct StagingBuffer {
  void* pinned = nullptr;
  cudaEvent_t done = nullptr;  // recorded after the DMA that last used the buffer
  bool in_use = false;         // a recorded event that nobody has waited for yet
};

// The pinned buffers of one device, used round-robin, one transfer at a time.
class StagingRing {
 public:
  explicit StagingRing(int device) : device_(device) {}

  std::mutex mutex;

  StagingBuffer& next() {
    StagingBuffer& buffer = buffers_[next_];
    next_ = (next_ + 1) % kStagingBuffers;
    if (buffer.pinned == nullptr) {
      DeviceGuard guard(device_);
      DTRAIN_CUDA_CHECK(cudaHostAlloc(&buffer.pinned, kStagingChunk, cudaHostAllocDefault));
      DTRAIN_CUDA_CHECK(cudaEventCreateWithFlags(&buffer.done, cudaEventDisableTiming));
    }
    wait(buffer);
    return buffer;
  }

  static void wait(StagingBuffer& buffer) {
    if (!buffer.in_use) return;
    profiler::detail::host_synchronization("staging buffer reuse");
    DTRAIN_CUDA_CHECK(cudaEventSynchronize(buffer.done));
    buffer.in_use = false;
  }

  static void record(StagingBuffer& buffer, cudaStream_t stream) {
    DTRAIN_CUDA_CHECK(cudaEventRecord(buffer.done, stream));
    buffer.in_use = true;
  }

 private:
  int device_;
  std::array<StagingBuffer, kStagingBuffers> buffers_;
  int next_ = 0;
};

StagingRing& ring_for(int device) {
  static std::mutex creation;
  static auto* rings = new std::array<std::unique_ptr<StagingRing>, kMaxDevices>();  // never destroyed
  if (device < 0 || device >= kMaxDevices) fail("CUDA device index ", device, " is out of range");
  std::lock_guard<std::mutex> lock(creation);
  if (!(*rings)[device]) (*rings)[device] = std::make_unique<StagingRing>(device);
  return *(*rings)[device];
}

void check_transfer(const Tensor& host, const Tensor& device_tensor, const char* what) {
  if (!host.device().is_cpu() || !device_tensor.device().is_cuda()) {
    fail(what, ": expected a CPU and a CUDA tensor, got ", host.device(), " and ", device_tensor.device());
  }
  if (host.nbytes() != device_tensor.nbytes() || !host.is_contiguous() || !device_tensor.is_contiguous()) {
    fail(what, ": expected two contiguous tensors of equal size, got ", host.nbytes(), " and ", device_tensor.nbytes(), " bytes");
  }
}

}  // namespace

void CudaBackend::copy_from_host(const Tensor& host_source, Tensor& destination) {
  check_transfer(host_source, destination, "copy_from_host");
  const size_t nbytes = host_source.nbytes();
  if (nbytes == 0) return;
  const int device = destination.device().index;
  DeviceGuard guard(device);
  cudaStream_t stream = current_stream(device);
  const char* from = static_cast<const char*>(host_source.data());
  char* to = static_cast<char*>(destination.data());
  if (nbytes <= kDirectTransferBytes) {
    // From pageable memory this returns once the bytes are staged: the source may change after.
    DTRAIN_CUDA_CHECK(cudaMemcpyAsync(to, from, nbytes, cudaMemcpyHostToDevice, stream));
    return;
  }
  StagingRing& ring = ring_for(device);
  std::lock_guard<std::mutex> lock(ring.mutex);
  for (size_t done = 0; done < nbytes; done += kStagingChunk) {
    const size_t length = std::min(kStagingChunk, nbytes - done);
    StagingBuffer& buffer = ring.next();  // waits until its previous DMA has read it
    std::memcpy(buffer.pinned, from + done, length);
    DTRAIN_CUDA_CHECK(cudaMemcpyAsync(to + done, buffer.pinned, length, cudaMemcpyHostToDevice, stream));
    StagingRing::record(buffer, stream);
  }
}

void CudaBackend::copy_to_host(const Tensor& source, Tensor& host_destination) {
  check_transfer(host_destination, source, "copy_to_host");
  const size_t nbytes = source.nbytes();
  if (nbytes == 0) return;
  const int device = source.device().index;
  DeviceGuard guard(device);
  cudaStream_t stream = current_stream(device);
  const char* from = static_cast<const char*>(source.data());
  char* to = static_cast<char*>(host_destination.data());
  profiler::detail::host_synchronization("copy_to_host");  // it returns once the bytes are here
  if (nbytes <= kDirectTransferBytes) {
    DTRAIN_CUDA_CHECK(cudaMemcpyAsync(to, from, nbytes, cudaMemcpyDeviceToHost, stream));
    DTRAIN_CUDA_CHECK(cudaStreamSynchronize(stream));
    return;
  }
  StagingRing& ring = ring_for(device);
  std::lock_guard<std::mutex> lock(ring.mutex);
  struct Pending {
    StagingBuffer* buffer;
    size_t offset, length;
  };
  std::deque<Pending> pending;
  auto drain_oldest = [&] {
    Pending oldest = pending.front();
    pending.pop_front();
    oldest.buffer->in_use = false;  // counted once, above, as part of copy_to_host
    DTRAIN_CUDA_CHECK(cudaEventSynchronize(oldest.buffer->done));
    std::memcpy(to + oldest.offset, oldest.buffer->pinned, oldest.length);
  };
  for (size_t done = 0; done < nbytes; done += kStagingChunk) {
    if (static_cast<int>(pending.size()) == kStagingBuffers) drain_oldest();  // frees the buffer next() returns
    const size_t length = std::min(kStagingChunk, nbytes - done);
    StagingBuffer& buffer = ring.next();
    DTRAIN_CUDA_CHECK(cudaMemcpyAsync(buffer.pinned, from + done, length, cudaMemcpyDeviceToHost, stream));
    StagingRing::record(buffer, stream);
    pending.push_back({&buffer, done, length});
  }
  while (!pending.empty()) drain_oldest();
}

}  // namespace dtrain::cuda
