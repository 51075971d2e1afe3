#include "cuda/caching_allocator.h"

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "core/error.h"
#include "cuda/check.h"
#include "cuda/stream.h"

namespace dtrain::cuda {
namespace {

class DeviceMemory final : public SegmentSource {
 public:
  explicit DeviceMemory(int device) : device_(device) {}

  void* allocate_segment(size_t nbytes) override {
    DeviceGuard guard(device_);
    void* base = nullptr;
    cudaError_t status = cudaMalloc(&base, nbytes);
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // not sticky: clear it so later calls do not see it
      return nullptr;
    }
    DTRAIN_CUDA_CHECK(status);
    return base;
  }

  void free_segment(void* base, size_t) override {
    DeviceGuard guard(device_);
    DTRAIN_CUDA_CHECK(cudaFree(base));  // synchronises the device: no queued work still uses it
  }

  std::string describe_memory() override {
    DeviceGuard guard(device_);
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) {
      cudaGetLastError();
      return "the device's free memory is unknown (cudaMemGetInfo failed)";
    }
    return detail::concat("the device has ", free_bytes, " of ", total_bytes, " bytes free");
  }

 private:
  int device_;
};

struct DevicePools {
  std::mutex mutex;  // guards creation only; each pool locks itself
  std::array<std::unique_ptr<DeviceMemory>, kMaxDevices> sources;
  std::array<std::unique_ptr<BlockPool>, kMaxDevices> pools;
};

DevicePools& device_pools() {
  static auto* pools = new DevicePools();  // never destroyed: storages may be freed after static destructors
  return *pools;
}

BlockPool& pool_for(int device) {
  if (device < 0 || device >= kMaxDevices) fail("CUDA device index ", device, " is out of range (0 to ", kMaxDevices - 1, ")");
  DevicePools& all = device_pools();
  std::lock_guard<std::mutex> lock(all.mutex);
  if (!all.pools[device]) {
    int count = 0;
    DTRAIN_CUDA_CHECK(cudaGetDeviceCount(&count));
    if (device >= count) fail("CUDA device cuda:", device, " does not exist (", count, " devices visible)");
    all.sources[device] = std::make_unique<DeviceMemory>(device);
    all.pools[device] = std::make_unique<BlockPool>(*all.sources[device], "cuda:" + std::to_string(device));
  }
  return *all.pools[device];
}

}  // namespace

void* CachingAllocator::allocate(size_t nbytes, Device device) {
  return pool_for(device.index).allocate(nbytes, reinterpret_cast<uintptr_t>(current_stream(device.index)));
}

void CachingAllocator::deallocate(void* pointer, size_t, Device device) { pool_for(device.index).free(pointer); }

BlockPoolStats CachingAllocator::stats(int device) { return pool_for(device).stats(); }

void CachingAllocator::empty_cache() {
  DevicePools& all = device_pools();
  for (int device = 0; device < kMaxDevices; ++device) {
    BlockPool* pool;
    {
      std::lock_guard<std::mutex> lock(all.mutex);
      pool = all.pools[device].get();
    }
    if (pool != nullptr) pool->release_cached();
  }
}

CachingAllocator& caching_allocator() {
  static auto* allocator = new CachingAllocator();
  return *allocator;
}

ScratchBuffer::ScratchBuffer(int device, size_t nbytes)
    : device_(device), nbytes_(nbytes), data_(caching_allocator().allocate(nbytes, Device::cuda(device))) {}

ScratchBuffer::~ScratchBuffer() {
  try {
    caching_allocator().deallocate(data_, nbytes_, Device::cuda(device_));
  } catch (...) {  // a destructor must not raise; the pool only raises on a pointer it does not know
  }
}

}  // namespace dtrain::cuda
