#pragma once
// The loaders under fuzz read files, not memory: each input is written to one scratch file of this
// process (in the temporary directory), replaced at every run and removed at exit.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "core/error.h"

namespace dtrain::fuzz {

inline const std::filesystem::path& scratch_file_path(const char* extension) {
  static const std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("dtrain-fuzz-" + std::to_string(::getpid()) + extension);
  // Registered after path is made, so it runs before path is destroyed.
  static const bool removed_at_exit = std::atexit([] {
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
  }) == 0;
  (void)removed_at_exit;
  return path;
}

// The input's bytes as the scratch file; extension keeps loaders that look at it (".bin") happy.
inline const std::filesystem::path& write_input_file(const uint8_t* data, size_t size, const char* extension) {
  const std::filesystem::path& path = scratch_file_path(extension);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  // A harness that cannot write its input would fuzz nothing; stop loudly instead.
  if (!out) fail("fuzz: cannot write the input to '", path.string(), "'");
  return path;
}

}  // namespace dtrain::fuzz
