#include "core/plugin_library.h"

#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <vector>

namespace dtrain::detail {
namespace {

std::string executable_directory() {
  char path[PATH_MAX];
  ssize_t length = readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (length <= 0) return "";
  std::string full(path, static_cast<size_t>(length));
  size_t slash = full.rfind('/');
  return slash == std::string::npos ? "" : full.substr(0, slash);
}

// Candidate paths in search order; the last, a bare name, asks the dynamic loader to search.
std::vector<std::string> candidate_paths(const PluginLibrarySearch& search) {
  std::vector<std::string> paths;
  if (const char* chosen = std::getenv(search.environment_variable); chosen && *chosen) {
    paths.emplace_back(chosen);
    return paths;
  }
  std::string directory = executable_directory();
  if (!directory.empty()) paths.push_back(directory + "/" + search.file_name);
  paths.emplace_back(search.file_name);
  return paths;
}

}  // namespace

OpenedPluginLibrary open_plugin_library(const PluginLibrarySearch& search) {
  OpenedPluginLibrary opened;
  for (const std::string& path : candidate_paths(search)) {
    bool bare_name = path.find('/') == std::string::npos;
    if (!bare_name && access(path.c_str(), F_OK) != 0) {
      opened.attempts += "\n  " + path + ": no such file";
      continue;
    }
    opened.handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (opened.handle != nullptr) return opened;
    const char* reason = dlerror();
    opened.attempts += "\n  " + path + (bare_name ? " (LD_LIBRARY_PATH, the program's RUNPATH)" : "") + ": " +
                       (reason ? reason : "dlopen failed");
  }
  return opened;
}

}  // namespace dtrain::detail
