#include "dist/checkpoint/block_checksum.h"

#include <algorithm>

namespace dtrain::dist {

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
