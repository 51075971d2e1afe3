#pragma once
// CRC-32 (zlib's polynomial, as in gzip, PNG and the sharded checkpoints' blocks) of a byte run:
// what dtrain's files carry to catch a flipped or torn byte on load.
#include <cstdint>

namespace dtrain {

// The CRC-32 of length bytes at data; continue a run with crc32_of(next, n, previous).
uint32_t crc32_of(const void* data, uint64_t length, uint32_t previous = 0);

}  // namespace dtrain
