#pragma once
// Philox4x32-10 (Salmon et al., "Parallel Random Numbers: As Easy as 1, 2, 3", SC'11): a counter
// based generator, so element i of a random op is a pure function of (seed, offset + i / 2) and
// any thread or device computes the same value. Written for host and device compilers alike.
#include <cstdint>

#if defined(__CUDACC__)
#define DTRAIN_HOST_DEVICE __host__ __device__
#else
#define DTRAIN_HOST_DEVICE
#endif

namespace dtrain {

struct PhiloxBlock {
  uint32_t lane[4];
};

DTRAIN_HOST_DEVICE inline PhiloxBlock philox4x32(uint64_t seed, uint64_t counter) {
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint64_t product0 = static_cast<uint64_t>(0xD2511F53u) * c0;
    uint64_t product1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
    uint32_t hi0 = static_cast<uint32_t>(product0 >> 32), lo0 = static_cast<uint32_t>(product0);
    uint32_t hi1 = static_cast<uint32_t>(product1 >> 32), lo1 = static_cast<uint32_t>(product1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return PhiloxBlock{{c0, c1, c2, c3}};
}

// Two uniforms in [0, 1) with 53 random bits each, from lanes (0, 1) and (2, 3).
DTRAIN_HOST_DEVICE inline void philox_uniform_pair(uint64_t seed, uint64_t counter, double* first, double* second) {
  PhiloxBlock block = philox4x32(seed, counter);
  uint64_t a = (static_cast<uint64_t>(block.lane[0]) << 32) | block.lane[1];
  uint64_t b = (static_cast<uint64_t>(block.lane[2]) << 32) | block.lane[3];
  constexpr double kScale = 1.0 / 9007199254740992.0;  // 2^-53
  *first = static_cast<double>(a >> 11) * kScale;
  *second = static_cast<double>(b >> 11) * kScale;
}

}  // namespace dtrain
