// The loader of libdtrain_nccl.so (dist/nccl_library.h), on the pattern of core/cuda_device.cpp.
#include "dist/nccl_library.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

#include "core/cuda_device.h"
#include "core/error.h"
#include "core/plugin_library.h"

namespace dtrain::dist::detail {
namespace {

constexpr const char* kLibraryName = "libdtrain_nccl.so";

struct LoaderState {
  std::mutex mutex;
  bool attempted = false;
  std::string error;  // why loading failed; empty after a success
  NcclLibrary* library = nullptr;
};

LoaderState& loader() {
  static auto* state = new LoaderState();  // never destroyed: backends may outlive static destructors
  return *state;
}

// Loads the library and asks it for its interface; returns the error text, empty on success.
std::string load(NcclLibrary*& library) {
#ifndef DTRAIN_WITH_NCCL_PLUGIN
  if (std::getenv("DTRAIN_NCCL_LIBRARY") == nullptr) {
    return "this build of dtrain has no NCCL backend (it needs a CUDA build with NCCL found: -DDTRAIN_CUDA=ON "
           "-DNCCL_ROOT=..., or point DTRAIN_NCCL_LIBRARY at a libdtrain_nccl.so)";
  }
#endif
  // The NCCL backend queues its work behind the CUDA backend's streams: that one first.
  if (!cuda::is_available()) return "CUDA is not available: " + cuda::unavailable_reason();
  dtrain::detail::OpenedPluginLibrary opened =
      dtrain::detail::open_plugin_library({kLibraryName, "DTRAIN_NCCL_LIBRARY"});
  void* handle = opened.handle;
  if (handle == nullptr) return "the NCCL backend library could not be loaded; tried:" + opened.attempts;
  auto entry = reinterpret_cast<NcclLibraryEntry>(dlsym(handle, kNcclLibraryEntrySymbol));
  if (entry == nullptr) {
    return std::string("the NCCL backend library has no entry point ") + kNcclLibraryEntrySymbol + " (a stale build?)";
  }
  const char* failure = nullptr;
  library = entry(kNcclLibraryAbiVersion, &failure);
  if (library == nullptr) return failure ? failure : "the NCCL backend library's entry point returned nothing";
  return "";
}

}  // namespace

NcclLibrary& nccl_library() {
  LoaderState& state = loader();
  std::lock_guard<std::mutex> lock(state.mutex);
  if (!state.attempted) {
    state.attempted = true;
    state.error = load(state.library);
  }
  if (!state.error.empty()) fail("NCCL is not available: ", state.error);
  return *state.library;
}

bool nccl_library_available(std::string* reason) {
  try {
    nccl_library();
    return true;
  } catch (const Error& error) {
    if (reason) *reason = error.what();
    return false;
  }
}

}  // namespace dtrain::dist::detail
