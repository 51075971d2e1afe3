#pragma once
// A whole file's bytes as a string, and a file written from one: how tests build and damage
// files byte by byte (safetensors, token files).
#include <filesystem>
#include <fstream>
#include <ios>
#include <iterator>
#include <string>

namespace dtrain::testing {

inline std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream stream(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(stream)), std::istreambuf_iterator<char>());
}

inline void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream stream(path, std::ios::binary | std::ios::trunc);
  stream.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace dtrain::testing
