#include "core/crc32.h"

#include <zlib.h>

#include <algorithm>

namespace dtrain {

uint32_t crc32_of(const void* data, uint64_t length, uint32_t previous) {
  const auto* bytes = static_cast<const Bytef*>(data);
  uLong crc = previous;
  // zlib takes the length as uInt (32 bits): long runs go in pieces.
  constexpr uint64_t kPiece = uint64_t{1} << 30;
  while (length > 0) {
    const uint64_t piece = std::min(length, kPiece);
    crc = crc32(crc, bytes, static_cast<uInt>(piece));
    bytes += piece;
    length -= piece;
  }
  return static_cast<uint32_t>(crc);
}

}  // namespace dtrain
