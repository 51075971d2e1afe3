#include "dist/checkpoint/block_checksum.h"

#include <zlib.h>

#include <algorithm>

namespace dtrain::dist {

uint32_t crc32_of(const void* data, uint64_t length) {
  const auto* bytes = static_cast<const Bytef*>(data);
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib takes the length as uInt (32 bits): long runs go in pieces.
  constexpr uint64_t kPiece = uint64_t{1} << 30;
  while (length > 0) {
    uint64_t piece = std::min(length, kPiece);
    crc = crc32(crc, bytes, static_cast<uInt>(piece));
    bytes += piece;
    length -= piece;
  }
  return static_cast<uint32_t>(crc);
}

std::vector<uint32_t> block_checksums(const void* data, uint64_t length, uint64_t block_bytes) {
  std::vector<uint32_t> checksums;
  checksums.reserve(block_count(length, block_bytes));
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (uint64_t begin = 0; begin < length; begin += block_bytes) {
    checksums.push_back(crc32_of(bytes + begin, std::min(block_bytes, length - begin)));
  }
  return checksums;
}

}  // namespace dtrain::dist
