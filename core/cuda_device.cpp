// The loader of libdtrain_cuda.so and the public CUDA functions that forward to its runtime.
#include "core/cuda_device.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

#include "core/error.h"
#include "core/plugin_library.h"
#include "core/profiler_session.h"

namespace dtrain::cuda {
namespace detail {
namespace {

using dtrain::detail::open_plugin_library;
using dtrain::detail::OpenedPluginLibrary;

constexpr const char* kLibraryName = "libdtrain_cuda.so";

struct LoaderState {
  std::mutex mutex;
  bool attempted = false;
  std::string error;  // why loading failed; empty after a success
  Runtime* runtime = nullptr;
};

LoaderState& loader() {
  static auto* state = new LoaderState();  // never destroyed: storages may be freed after static destructors ran
  return *state;
}

// Loads the library and runs its init; returns the error text, empty on success.
std::string load() {
#ifndef DTRAIN_WITH_CUDA_PLUGIN
  if (std::getenv("DTRAIN_CUDA_LIBRARY") == nullptr) {
    return "this build of dtrain has no CUDA backend (configure with -DDTRAIN_CUDA=ON where nvcc is installed, "
           "or point DTRAIN_CUDA_LIBRARY at a libdtrain_cuda.so)";
  }
#endif
  OpenedPluginLibrary opened = open_plugin_library({kLibraryName, "DTRAIN_CUDA_LIBRARY"});
  void* handle = opened.handle;
  if (handle == nullptr) return "the CUDA backend library could not be loaded; tried:" + opened.attempts;
  auto init = reinterpret_cast<BackendInit>(dlsym(handle, kBackendInitSymbol));
  if (init == nullptr) {
    return std::string("the CUDA backend library has no entry point ") + kBackendInitSymbol + " (a stale build?)";
  }
  const char* failure = init(kBackendAbiVersion);
  if (failure != nullptr) return failure;  // the library stays loaded: its strings must stay valid
  return "";
}

}  // namespace

void register_runtime(Runtime* runtime) { loader().runtime = runtime; }

Runtime& runtime() {
  LoaderState& state = loader();
  std::lock_guard<std::mutex> lock(state.mutex);
  if (!state.attempted) {
    state.attempted = true;
    state.error = load();
    if (state.error.empty() && state.runtime == nullptr) state.error = "the CUDA backend library registered no runtime";
    if (state.error.empty()) profiler::detail::cuda_runtime_loaded();
  }
  if (!state.error.empty()) fail("CUDA is not available: ", state.error);
  return *state.runtime;
}

}  // namespace detail

bool is_available() {
  try {
    return detail::runtime().device_count() > 0;
  } catch (const Error&) {
    return false;
  }
}

std::string unavailable_reason() {
  try {
    detail::runtime();
    return "";
  } catch (const Error& error) {
    return error.what();
  }
}

int device_count() { return is_available() ? detail::runtime().device_count() : 0; }

Device device_for_local_rank(int local_rank) {
  if (local_rank < 0) fail("device_for_local_rank: expected a local rank >= 0, got ", local_rank);
  int count = detail::runtime().device_count();
  if (count <= 0) fail("device_for_local_rank: no CUDA device is visible");
  return Device::cuda(local_rank % count);
}

void set_device(int index) {
  int count = detail::runtime().device_count();
  if (index < 0 || index >= count) fail("set_device: device index ", index, " is out of range (", count, " devices visible)");
  detail::runtime().set_device(index);
}

int current_device() { return detail::runtime().current_device(); }

void synchronize(Device device) {
  if (!device.is_cuda()) fail("cuda::synchronize: expected a CUDA device, got ", device);
  detail::runtime().synchronize(device.index);
}

CacheStats cache_stats(Device device) {
  if (!device.is_cuda()) fail("cuda::cache_stats: expected a CUDA device, got ", device);
  return detail::runtime().cache_stats(device.index);
}

void empty_cache() { detail::runtime().empty_cache(); }
void set_allow_tf32(bool allow) { detail::runtime().set_allow_tf32(allow); }
bool allow_tf32() { return detail::runtime().allow_tf32(); }

void* current_stream(Device device) {
  if (!device.is_cuda()) fail("cuda::current_stream: expected a CUDA device, got ", device);
  return detail::runtime().current_stream(device.index);
}

}  // namespace dtrain::cuda
