// The library's entry point: core's loader (core/cuda_device.cpp) calls it once, and it registers
// the kernel table, the caching allocator and the runtime with core.
#include <string>

#include "core/cuda_device.h"
#include "core/profiler_recorder.h"
#include "cuda/caching_allocator.h"
#include "cuda/check.h"
#include "cuda/cuda_backend.h"
#include "cuda/stream.h"

namespace dtrain::cuda {
namespace {

class CudaRuntime final : public detail::Runtime {
 public:
  explicit CudaRuntime(int device_count) : device_count_(device_count) {}

  int device_count() override { return device_count_; }
  void set_device(int index) override { DTRAIN_CUDA_CHECK(cudaSetDevice(index)); }
  int current_device() override {
    int index = 0;
    DTRAIN_CUDA_CHECK(cudaGetDevice(&index));
    return index;
  }
  void synchronize(int index) override {
    profiler::detail::host_synchronization("cuda::synchronize");
    DeviceGuard guard(index);
    DTRAIN_CUDA_CHECK(cudaDeviceSynchronize());
  }
  CacheStats cache_stats(int index) override {
    BlockPoolStats pool = caching_allocator().stats(index);
    CacheStats stats;
    stats.allocated_bytes = pool.allocated_bytes;
    stats.reserved_bytes = pool.reserved_bytes;
    stats.peak_reserved_bytes = pool.peak_reserved_bytes;
    stats.segments = pool.segments;
    stats.allocations = pool.allocations;
    stats.cache_hits = pool.cache_hits;
    stats.splits = pool.splits;
    stats.driver_allocations = pool.driver_allocations;
    return stats;
  }
  void empty_cache() override { caching_allocator().empty_cache(); }
  void set_allow_tf32(bool allow) override { cuda::set_tf32_matmul_allowed(allow); }
  bool allow_tf32() override { return cuda::tf32_matmul_allowed(); }
  void* current_stream(int index) override { return static_cast<void*>(cuda::current_stream(index)); }
  void* create_timing_event(int index) override {
    DeviceGuard guard(index);
    cudaEvent_t event = nullptr;
    DTRAIN_CUDA_CHECK(cudaEventCreate(&event));  // with timing
    return static_cast<void*>(event);
  }
  void record_timing_event(void* event, int index) override {
    DTRAIN_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(event), cuda::current_stream(index)));
  }
  float timing_event_elapsed_ms(void* start, void* end) override {
    DTRAIN_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(end)));
    float milliseconds = 0.0f;
    DTRAIN_CUDA_CHECK(cudaEventElapsedTime(&milliseconds, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(end)));
    return milliseconds;
  }
  void destroy_timing_event(void* event) override { cudaEventDestroy(static_cast<cudaEvent_t>(event)); }

 private:
  int device_count_;
};

}  // namespace
}  // namespace dtrain::cuda

extern "C" __attribute__((visibility("default"))) const char* dtrain_cuda_backend_init(int abi_version) {
  using namespace dtrain;
  static std::string failure;  // lives as long as the library, as the loader expects
  if (abi_version != cuda::detail::kBackendAbiVersion) {
    failure = detail::concat("libdtrain_cuda.so was built for backend ABI version ", cuda::detail::kBackendAbiVersion,
                             ", this program expects ", abi_version, " (rebuild both from one source tree)");
    return failure.c_str();
  }
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    failure = detail::concat("cudaGetDeviceCount failed: ", cudaGetErrorName(status), " (", cudaGetErrorString(status),
                             "); no usable CUDA device or driver");
    return failure.c_str();
  }
  if (count == 0) return "no CUDA device is visible (cudaGetDeviceCount returned 0)";
  static cuda::CudaRuntime runtime(count);
  register_backend(DeviceType::CUDA, &cuda::backend());
  register_allocator(DeviceType::CUDA, &cuda::caching_allocator());
  cuda::detail::register_runtime(&runtime);
  return nullptr;
}
