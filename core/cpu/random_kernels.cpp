// CpuBackend::random: element i is computed from Philox block (offset + i / 2), lane pair i % 2,
// so the values do not depend on how the loop is split across threads (core/random.h). The
// arithmetic is core/philox.h's philox_sample, shared with the CUDA kernel.
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/strided_loop.h"
#include "core/philox.h"

namespace dtrain::cpu {

static_assert(static_cast<int>(RandomKind::Uniform) == 0 && static_cast<int>(RandomKind::Normal) == 1 &&
                  static_cast<int>(RandomKind::Bernoulli) == 2,
              "philox_sample numbers the kinds as RandomKind does");

void CpuBackend::random(RandomKind kind, RandomStream stream, double a, double b, Tensor& out) {
  visit_dtype(out.dtype(), [&]<typename T>() {
    T* o = static_cast<T*>(out.data());
    parallel_for(out.numel(), 4096, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const double value = philox_sample(static_cast<int>(kind), stream.seed, stream.offset, i, a, b);
        if constexpr (std::is_same_v<T, bool>) o[i] = value != 0.0;
        else o[i] = static_cast<T>(static_cast<compute_t<T>>(value));
      }
    });
  });
}

}  // namespace dtrain::cpu
