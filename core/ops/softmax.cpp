// softmax and log_softmax along one dim (max-subtracted in the kernel, so exp never overflows).
#include "core/ops/softmax.h"

#include <cstdint>

#include "core/backend.h"
#include "core/grad_mode.h"
#include "core/graph.h"
#include "core/ops/factory.h"
#include "core/ops/internal.h"
#include "core/ops/view.h"

namespace dtrain {
namespace {

// A 0-d tensor is handled as the one-element vector it holds.
Tensor as_vector_if_scalar(const Tensor& x) {
  return x.dim() == 0 ? internal::make_view(x, Shape{1}, Strides{1}, x.storage_offset()) : x;
}

// The input gradient from the output gradient and the forward's output, through the kernel
// table. Not recorded: the backward pass runs without grad mode (first derivatives only).
Tensor softmax_backward(const Tensor& grad_output, const Tensor& output, int64_t dim, bool log) {
  NoGradGuard no_grad;
  Tensor y = as_vector_if_scalar(output);
  Tensor g = as_vector_if_scalar(grad_output.dtype() == output.dtype() ? grad_output : grad_output.to(output.dtype()));
  Tensor grad_input = empty(y.shape(), {.dtype = y.dtype(), .device = y.device()});
  backend_for(y.device()).softmax_backward(g, y, dim, log, grad_input);
  return output.dim() == 0 ? internal::make_view(grad_input, Shape{}, Strides{}, 0) : grad_input;
}

Tensor softmax_forward(const Tensor& x, int64_t dim, bool log, const char* name) {
  check_defined(x, name, "x");
  if (!is_floating(x.dtype())) {
    fail(name, ": expected a floating-point tensor, got ", x.dtype(), " (convert with .to(kFloat32) first)");
  }
  const int64_t d = normalize_dim(dim, x.dim(), name);
  Tensor input = as_vector_if_scalar(x);
  Tensor out = empty(input.shape(), {.dtype = x.dtype(), .device = x.device()});
  backend_for(x.device()).softmax(input, d, log, out);
  if (x.dim() == 0) out = internal::make_view(out, Shape{}, Strides{}, 0);
  if (any_requires_grad({&x})) {
    SavedTensor saved_out(out);
    record(name, {x}, {out}, [saved_out, d, log, name](const GradientList& g) {
      return GradientList{softmax_backward(g[0], saved_out.unpack(name), d, log)};
    });
  }
  return out;
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_forward(x, dim, /*log=*/false, "softmax"); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_forward(x, dim, /*log=*/true, "log_softmax"); }

}  // namespace dtrain
