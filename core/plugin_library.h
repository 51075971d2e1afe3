#pragma once
// Finding and opening one of dtrain's run-time-loaded libraries (libdtrain_cuda.so,
// libdtrain_nccl.so): programs that never use a GPU never load them, so a CPU-only program runs
// where CUDA is not installed. Searched, in order: the path in an environment variable (an
// explicit choice: nothing else is tried), the executable's own folder, the path the build put
// it at, and finally the dynamic loader's own search (LD_LIBRARY_PATH, rpath).
#include <string>

namespace dtrain::detail {

struct PluginLibrarySearch {
  const char* file_name;             // "libdtrain_cuda.so"
  const char* environment_variable;  // "DTRAIN_CUDA_LIBRARY"
  const char* build_path = nullptr;  // where this build wrote it; null when it built none
};

struct OpenedPluginLibrary {
  void* handle = nullptr;  // from dlopen; null when nothing loaded
  std::string attempts;    // every path tried and why it failed, one "\n  path: reason" each
};

// Opens the first candidate that loads (RTLD_NOW | RTLD_LOCAL). The handle is never closed:
// the library's code and strings stay valid for the life of the process.
OpenedPluginLibrary open_plugin_library(const PluginLibrarySearch& search);

}  // namespace dtrain::detail
