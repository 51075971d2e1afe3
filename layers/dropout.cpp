#include "layers/dropout.h"

#include "core/ops/elementwise.h"
#include "core/ops/factory.h"

namespace dtrain {

namespace {
void check_probability(double p, const char* where) {
  if (!(p >= 0.0 && p <= 1.0)) fail(where, ": expected a probability p in [0, 1], got ", p);
}
}  // namespace

Tensor dropout(const Tensor& x, double p, bool training, Generator* generator) {
  check_defined(x, "dropout", "x");
  check_probability(p, "dropout");
  if (!training || p == 0.0) return x;
  if (!is_floating(x.dtype())) fail("dropout: expected a floating tensor, got ", x.dtype());
  if (p == 1.0) return mul(x, zeros_like(x));  // everything dropped; the gradient is zero too
  // The mask takes the 1 / (1 - p) scale itself: one multiply on x instead of two.
  Tensor mask = bernoulli(x.shape(), 1.0 - p, {.dtype = x.dtype(), .device = x.device()}, generator);
  mask.mul_(1.0 / (1.0 - p));
  return mul(x, mask);
}

Dropout::Dropout(double p) : Module("Dropout"), p_(p) { check_probability(p, "Dropout"); }

Tensor Dropout::forward(const Tensor& x) { return dropout(x, p_, is_training()); }

}  // namespace dtrain
