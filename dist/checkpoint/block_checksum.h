#pragma once
// Content checksums of saved fragments, one CRC-32 per block of a fixed byte size, so that a
// reader of part of a fragment checks exactly the blocks it reads (at most one block more than
// it needs at either end) instead of the whole fragment, and a flipped byte in a shard file is
// reported with the elements it damaged.
#include <cstdint>
#include <vector>

#include "core/crc32.h"

namespace dtrain::dist {

inline constexpr uint64_t kDefaultChecksumBlockBytes = uint64_t{1} << 20;  // 1 MiB

// The CRC-32 of each block_bytes-long block of data (the last block may be shorter); none for
// length 0.
std::vector<uint32_t> block_checksums(const void* data, uint64_t length, uint64_t block_bytes);

// How many checksums a run of length bytes has.
inline uint64_t block_count(uint64_t length, uint64_t block_bytes) { return (length + block_bytes - 1) / block_bytes; }

}  // namespace dtrain::dist
