#pragma once
// Finding and opening one of dtrain's run-time-loaded libraries (libdtrain_cuda.so,
// libdtrain_nccl.so): programs that never use a GPU never load them, so a CPU-only program runs
// where CUDA is not installed. Searched, in order: the path in an environment variable (an
// explicit choice: nothing else is tried), the executable's own folder, and finally the dynamic
// loader's own search (LD_LIBRARY_PATH, then the program's RUNPATH). No build-tree path is
// compiled in, so an installed libdtrain_core.a never reaches back into the build it came from:
// the RUNPATH says where the plugins are — this build folder for the programs built in it
// (CMAKE_BUILD_RPATH), the installed library folder for programs linked against an installed
// dtrain (dtrain::core and dtrain.pc add it) and for an installed dtrain-consolidate ($ORIGIN).
#include <string>

namespace dtrain::detail {

struct PluginLibrarySearch {
  const char* file_name;             // "libdtrain_cuda.so"
  const char* environment_variable;  // "DTRAIN_CUDA_LIBRARY"
};

struct OpenedPluginLibrary {
  void* handle = nullptr;  // from dlopen; null when nothing loaded
  std::string attempts;    // every path tried and why it failed, one "\n  path: reason" each
};

// Opens the first candidate that loads (RTLD_NOW | RTLD_LOCAL). The handle is never closed:
// the library's code and strings stay valid for the life of the process.
OpenedPluginLibrary open_plugin_library(const PluginLibrarySearch& search);

}  // namespace dtrain::detail
