#include "core/cpu/cpu_backend.h"

namespace dtrain::cpu {

Backend& backend() {
  static CpuBackend instance;
  return instance;
}

}  // namespace dtrain::cpu
