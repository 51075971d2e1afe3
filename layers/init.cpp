#include "layers/init.h"

#include <cmath>

#include "core/allocator.h"
#include "core/grad_mode.h"
#include "core/ops/factory.h"
#include "layers/deferred_init.h"

namespace dtrain {

Tensor uniform_parameter(const Shape& shape, double bound) {
  if (DeferredInit* deferred = active_deferred_init()) {
    if (!(bound >= 0)) fail("uniform_parameter: expected a bound >= 0, got ", bound);
    return deferred->defer(shape, ParameterInit::Kind::Uniform, -bound, bound);
  }
  MemoryTagScope tag(MemoryTag::Parameters);
  NoGradGuard no_grad;
  return uniform(shape, -bound, bound);
}

Tensor normal_parameter(const Shape& shape, double mean, double std) {
  if (DeferredInit* deferred = active_deferred_init()) {
    if (!(std >= 0)) fail("normal_parameter: expected std >= 0, got ", std);
    return deferred->defer(shape, ParameterInit::Kind::Normal, mean, std);
  }
  MemoryTagScope tag(MemoryTag::Parameters);
  NoGradGuard no_grad;
  return normal(shape, mean, std);
}

Tensor constant_parameter(const Shape& shape, double value) {
  if (DeferredInit* deferred = active_deferred_init()) {
    return deferred->defer(shape, ParameterInit::Kind::Constant, value);
  }
  MemoryTagScope tag(MemoryTag::Parameters);
  return full(shape, value);
}

void reinitialize_normal(const Tensor& parameter, double mean, double std) {
  if (DeferredInit* deferred = active_deferred_init()) {
    if (!(std >= 0)) fail("reinitialize_normal: expected std >= 0, got ", std);
    deferred->redefine(parameter, ParameterInit::Kind::Normal, mean, std);
    return;
  }
  NoGradGuard no_grad;
  Tensor target = parameter;
  normal_(target, mean, std);
}

double default_init_bound(int64_t fan_in) {
  if (fan_in <= 0) fail("default_init_bound: expected a positive fan-in, got ", fan_in);
  return 1.0 / std::sqrt(static_cast<double>(fan_in));
}

}  // namespace dtrain
