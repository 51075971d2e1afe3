#include "layers/init.h"

#include <cmath>

#include "core/allocator.h"
#include "core/grad_mode.h"
#include "core/ops/factory.h"

namespace dtrain {

Tensor uniform_parameter(const Shape& shape, double bound) {
  MemoryTagScope tag(MemoryTag::Parameters);
  NoGradGuard no_grad;
  return uniform(shape, -bound, bound);
}

Tensor normal_parameter(const Shape& shape, double mean, double std) {
  MemoryTagScope tag(MemoryTag::Parameters);
  NoGradGuard no_grad;
  return normal(shape, mean, std);
}

Tensor constant_parameter(const Shape& shape, double value) {
  MemoryTagScope tag(MemoryTag::Parameters);
  return full(shape, value);
}

double default_init_bound(int64_t fan_in) {
  if (fan_in <= 0) fail("default_init_bound: expected a positive fan-in, got ", fan_in);
  return 1.0 / std::sqrt(static_cast<double>(fan_in));
}

}  // namespace dtrain
