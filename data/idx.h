#pragma once
// IDX files, the format of the MNIST family: a 4-byte magic (0, 0, element type, rank), rank
// big-endian uint32 sizes, then the elements, big-endian, row-major. Read through zlib, so a
// gzip'd file (as Debian ships them) and a plain one read alike.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <vector>

#include "core/dtype.h"
#include "core/shape.h"
#include "core/tensor.h"

namespace dtrain {

enum class IdxType : uint8_t { UInt8 = 0x08, Int8 = 0x09, Int16 = 0x0B, Int32 = 0x0C, Float32 = 0x0D, Float64 = 0x0E };

size_t idx_type_size(IdxType type);
const char* idx_type_name(IdxType type);

// An IDX file's contents with the elements in host byte order.
struct IdxArray {
  IdxType type = IdxType::UInt8;
  Shape shape;
  std::vector<unsigned char> data;
};

// Raises naming the file for a missing file, a bad magic, an unknown type, a truncated body or
// bytes after it.
IdxArray read_idx(const std::filesystem::path& path);

// The elements as a CPU tensor of dtype, each multiplied by scale (1/255 turns 8-bit pixels
// into [0, 1]); integer dtypes truncate toward zero.
Tensor idx_to_tensor(const IdxArray& array, DType dtype, double scale = 1.0);

}  // namespace dtrain
