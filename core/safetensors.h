#pragma once
// Tensors to and from files in the safetensors format, so a dtrain checkpoint opens in PyTorch
// and Hugging Face tools and weights made there load here. The layout:
//   8 bytes    N, the header length, unsigned little-endian
//   N bytes    JSON: {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
//                     ..., "__metadata__": {"key": "value"}}, padded with spaces
//   the rest   the byte buffer: each tensor contiguous, row-major, little-endian, at
//              [begin, end) counted from the buffer's start; together they cover it exactly.
// Writes are atomic (core/atomic_file.h: a temporary file, fsync, rename), and a load checks the
// whole header against the file before it creates any tensor, so a bad file is refused whole.
//
// Checksums: dtrain writes the CRC-32 of each tensor's bytes into the metadata, under the key
// "dtrain.crc32" (JSON text: {"<tensor>": "<8 hex digits>", ...}), and a load checks every tensor
// against it, naming the tensor and its bytes in the file when one does not match. Files without
// that key (written by PyTorch or another tool) load unchecked, and say so (`verified`). The key
// is the format's business: loads take it out of the metadata they return.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/shape.h"
#include "core/tensor.h"

namespace dtrain {

inline constexpr const char* kSafetensorsChecksumKey = "dtrain.crc32";

// The format's name of a dtype ("F32", "BF16", "BOOL", ...).
const char* safetensors_dtype_name(DType dtype);

// One tensor as the header describes it.
struct SafetensorsEntry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin = 0;  // byte range in the buffer, [begin, end)
  uint64_t end = 0;
  std::optional<uint32_t> crc32;  // of its bytes, as the file's "dtrain.crc32" metadata says
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> entries;  // in buffer order (by begin)
  std::map<std::string, std::string> metadata;  // without "dtrain.crc32"
  bool has_checksums = false;                   // "dtrain.crc32" gives every entry its crc32
  uint64_t header_length = 0;  // N: the JSON's bytes, padding included
  uint64_t buffer_offset = 0;  // where the buffer starts in the file: 8 + N
  uint64_t buffer_length = 0;
};

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;  // without "dtrain.crc32"
  // True when every tensor matched the CRC-32 the file carries; false for a file without
  // checksums (another tool's), whose bytes nothing could check.
  bool verified = false;
};

struct SafetensorsWriteOptions {
  // Off where something else checksums the bytes (a sharded checkpoint's index does).
  bool checksums = true;
};

// Writes tensors (any device, any strides: each is copied to a contiguous CPU tensor) and the
// string metadata to path, atomically (core/atomic_file.h), with each tensor's CRC-32 in the
// metadata. The metadata key "dtrain.crc32" is reserved.
void save_safetensors(const std::filesystem::path& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {},
                      const SafetensorsWriteOptions& options = {});

// Reads and checks the header only: names, dtypes, shapes and offsets, without the data. Raises
// dtrain::Error naming the file, the tensor and the problem for anything load would refuse.
SafetensorsHeader read_safetensors_header(const std::filesystem::path& path);

// Reads every tensor (contiguous CPU tensors) and the metadata. Everything is validated before
// the first tensor is made: a truncated, corrupted or inconsistent file raises and yields nothing.
// Each tensor's bytes are checked against their CRC-32 when the file carries them.
SafetensorsFile load_safetensors(const std::filesystem::path& path);

}  // namespace dtrain
