#pragma once
// Philox4x32-10 (Salmon et al., "Parallel Random Numbers: As Easy as 1, 2, 3", SC'11): a counter
// based generator, so element i of a random op is a pure function of (seed, offset + i / 2) and
// any thread or device computes the same value. Written for host and device compilers alike.
#include <cmath>
#include <cstdint>

#include "core/host_device.h"

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

// Element i of a random op that starts at block offset (core/random.h's numbering), as a double:
// kind 0 uniform in [a, b), 1 normal with mean a and standard deviation b (Box-Muller on the
// block's pair), 2 Bernoulli with probability a. The CPU and CUDA kernels both call this, and the
// multiply-adds are written as fma so no compiler's contraction choices can make them differ.
DTRAIN_HOST_DEVICE inline double philox_sample(int kind, uint64_t seed, uint64_t offset, int64_t i, double a, double b) {
  double first, second;
  philox_uniform_pair(seed, offset + static_cast<uint64_t>(i / 2), &first, &second);
  const double u = i % 2 == 0 ? first : second;
  if (kind == 0) return fma(b - a, u, a);
  if (kind == 2) return u < a ? 1.0 : 0.0;
  // 1 - first lies in (0, 1], so the log is finite.
  const double radius = sqrt(-2.0 * log(1.0 - first));
  const double angle = 6.283185307179586 * second;
  return fma(b * radius, i % 2 == 0 ? cos(angle) : sin(angle), a);
}

}  // namespace dtrain
