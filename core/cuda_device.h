#pragma once
// CUDA devices as core sees them. The CUDA backend is a separate shared library
// (libdtrain_cuda.so, built from cuda/ when DTRAIN_CUDA is on) that core loads on the first use
// of a CUDA device: its init registers the kernel table (core/backend.h), the caching allocator
// (core/allocator.h) and the runtime below. A CPU-only program never loads it and never needs
// libcudart. Without the library, or without a device, using a CUDA tensor raises a dtrain::Error
// that says which.
//
// The library is looked for, in order: at $DTRAIN_CUDA_LIBRARY; next to the executable; then by
// the dynamic loader's own search (LD_LIBRARY_PATH, the program's RUNPATH: the build folder or
// the installed library folder, core/plugin_library.h).
//
//   if (dtrain::cuda::is_available()) {
//     dtrain::Device device = dtrain::cuda::device_for_local_rank(dtrain::dist::local_rank());
//     dtrain::cuda::set_device(device.index);
//     dtrain::Tensor x = dtrain::randn({64, 64}).to(device);
//   }
#include <cstdint>
#include <string>

#include "core/device.h"

namespace dtrain::cuda {

// True when the backend library loads and sees at least one device. Never raises.
bool is_available();
// Why is_available() is false (the loader's or the runtime's message); empty when it is true.
std::string unavailable_reason();
int device_count();  // 0 when unavailable

// The device a process with this local rank (its index among the ranks on one node) should
// use: cuda:(local_rank mod device_count). Raises when no device is available.
Device device_for_local_rank(int local_rank);
// The device this thread's CUDA work goes to when no tensor says otherwise.
void set_device(int index);
int current_device();

// Waits until all work queued on the device is done.
void synchronize(Device device);

// The caching allocator's bookkeeping on one device (bytes are rounded block sizes).
struct CacheStats {
  int64_t allocated_bytes = 0;       // in blocks handed out to storages
  int64_t reserved_bytes = 0;        // in segments held from the driver (allocated + cached)
  int64_t peak_reserved_bytes = 0;
  int64_t segments = 0;
  int64_t allocations = 0;           // blocks handed out, ever
  int64_t cache_hits = 0;            // of those, served from a cached block
  int64_t splits = 0;                // cached blocks split to serve a smaller request
  int64_t driver_allocations = 0;    // segments taken from the driver (cudaMalloc), ever
};
CacheStats cache_stats(Device device);
// Returns every wholly free cached segment to the driver, on every device.
void empty_cache();

// TF32 tensor cores for float32 matmuls: faster, about 10 mantissa bits. Off by default, so
// float32 results match the CPU's.
void set_allow_tf32(bool allow);
bool allow_tf32();

// The cudaStream_t this thread's work on the device is queued on (for NCCL and interop).
void* current_stream(Device device);

namespace detail {

// What the backend library registers besides its kernels and allocator.
class Runtime {
 public:
  virtual ~Runtime() = default;
  virtual int device_count() = 0;
  virtual void set_device(int index) = 0;
  virtual int current_device() = 0;
  virtual void synchronize(int index) = 0;
  virtual CacheStats cache_stats(int index) = 0;
  virtual void empty_cache() = 0;
  virtual void set_allow_tf32(bool allow) = 0;
  virtual bool allow_tf32() = 0;
  virtual void* current_stream(int index) = 0;
  // Timing events for the profiler (core/profiler_recorder.cpp), as opaque cudaEvent_t handles:
  // created on device index, recorded on this thread's current stream of it, and the time
  // between two recorded ones (waiting until end has completed; not a synchronisation the
  // profiler counts).
  virtual void* create_timing_event(int index) = 0;
  virtual void record_timing_event(void* event, int index) = 0;
  virtual float timing_event_elapsed_ms(void* start, void* end) = 0;
  virtual void destroy_timing_event(void* event) = 0;
};

// Bumped whenever Runtime, Backend, Allocator or the Tensor layout change: core refuses a
// library built against another version.
// 2: fused kernels (layer_norm, cross_entropy, adam_update, linear, convolution2d);
// 3: add_layer_norm, causal_softmax, attention, layer_norm_backward's grad_sum;
// 4: the profiler's timing events in Runtime (and the plugin reports host synchronisations).
//    Also in 4: Backend::linear_backward (bias gradient in the weight-gradient GEMM).
// 5: Backend::index_add's IndexBounds, Backend::linear_input_gradient (cuBLASLt DGELU_BGRAD).
// 6: Backend::supports (the capability question); attention and convolution2d return void.
inline constexpr int kBackendAbiVersion = 6;

// The library's entry point, found with dlsym. Returns null on success, else why it failed
// (no device, a driver too old, ...), a string that lives as long as the library.
using BackendInit = const char* (*)(int abi_version);
inline constexpr const char* kBackendInitSymbol = "dtrain_cuda_backend_init";

void register_runtime(Runtime* runtime);
// Loads the library and runs its init once per process; raises with the reason on failure.
Runtime& runtime();

}  // namespace detail
}  // namespace dtrain::cuda
