#pragma once
// Tensors to and from files in the safetensors format, so a dtrain checkpoint opens in PyTorch
// and Hugging Face tools and weights made there load here. The layout:
//   8 bytes    N, the header length, unsigned little-endian
//   N bytes    JSON: {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
//                     ..., "__metadata__": {"key": "value"}}, padded with spaces
//   the rest   the byte buffer: each tensor contiguous, row-major, little-endian, at
//              [begin, end) counted from the buffer's start; together they cover it exactly.
// Writes are atomic (a temporary file renamed over the target), and a load checks the whole
// header against the file before it creates any tensor, so a bad file is refused whole.
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/shape.h"
#include "core/tensor.h"

namespace dtrain {

// The format's name of a dtype ("F32", "BF16", "BOOL", ...).
const char* safetensors_dtype_name(DType dtype);

// One tensor as the header describes it.
struct SafetensorsEntry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin = 0;  // byte range in the buffer, [begin, end)
  uint64_t end = 0;
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> entries;  // in buffer order (by begin)
  std::map<std::string, std::string> metadata;
  uint64_t header_length = 0;  // N: the JSON's bytes, padding included
  uint64_t buffer_offset = 0;  // where the buffer starts in the file: 8 + N
  uint64_t buffer_length = 0;
};

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};

// Writes tensors (any device, any strides: each is copied to a contiguous CPU tensor) and the
// string metadata to path, atomically: into "<path>.tmp.<pid>", fsync, then rename.
void save_safetensors(const std::filesystem::path& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Reads and checks the header only: names, dtypes, shapes and offsets, without the data. Raises
// dtrain::Error naming the file, the tensor and the problem for anything load would refuse.
SafetensorsHeader read_safetensors_header(const std::filesystem::path& path);

// Reads every tensor (contiguous CPU tensors) and the metadata. Everything is validated before
// the first tensor is made: a truncated, corrupted or inconsistent file raises and yields nothing.
SafetensorsFile load_safetensors(const std::filesystem::path& path);

}  // namespace dtrain
