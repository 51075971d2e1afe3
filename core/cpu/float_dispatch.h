#pragma once
// The dtype switch of the fused CPU kernels, which run float32 and float64 only (the layers route
// 16-bit tensors elsewhere before calling them, so another dtype here is an internal error).
#include "core/dtype.h"
#include "core/error.h"

namespace dtrain::cpu {

template <typename Fn>
void visit_float32_or_float64(DType dtype, const char* op, Fn&& fn) {
  if (dtype == kFloat32) fn.template operator()<float>();
  else if (dtype == kFloat64) fn.template operator()<double>();
  else fail("internal: the CPU ", op, " kernel takes float32 or float64, got ", dtype);
}

}  // namespace dtrain::cpu
