// CpuBackend::random: element i is computed from Philox block (offset + i / 2), lane pair i % 2,
// so the values do not depend on how the loop is split across threads (core/random.h).
#include <cmath>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/strided_loop.h"
#include "core/philox.h"

namespace dtrain::cpu {

void CpuBackend::random(RandomKind kind, RandomStream stream, double a, double b, Tensor& out) {
  visit_dtype(out.dtype(), [&]<typename T>() {
    T* o = static_cast<T*>(out.data());
    parallel_for(out.numel(), 4096, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        double first, second;
        philox_uniform_pair(stream.seed, stream.offset + static_cast<uint64_t>(i / 2), &first, &second);
        double value;
        switch (kind) {
          case RandomKind::Uniform: value = a + (b - a) * (i % 2 == 0 ? first : second); break;
          case RandomKind::Bernoulli: value = (i % 2 == 0 ? first : second) < a ? 1.0 : 0.0; break;
          case RandomKind::Normal: {
            // Box-Muller on the pair; 1 - u lies in (0, 1], so the log is finite.
            double radius = std::sqrt(-2.0 * std::log(1.0 - first));
            double angle = 6.283185307179586 * second;
            value = a + b * radius * (i % 2 == 0 ? std::cos(angle) : std::sin(angle));
            break;
          }
          default: value = 0.0;
        }
        if constexpr (std::is_same_v<T, bool>) o[i] = value != 0.0;
        else o[i] = static_cast<T>(static_cast<compute_t<T>>(value));
      }
    });
  });
}

}  // namespace dtrain::cpu
