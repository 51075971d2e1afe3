#include "core/ops/matmul.h"

#include <cstdint>

#include "core/backend.h"
#include "core/grad_mode.h"
#include "core/graph.h"
#include "core/ops/factory.h"
#include "core/ops/internal.h"
#include "core/ops/view.h"

namespace dtrain {

namespace {

// a [..., M, K] @ b [..., K, N] with both at least 2-d; batch dims broadcast.
Tensor batched_matmul(const Tensor& a, const Tensor& b) {
  int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  Shape batch = broadcast_shapes(Shape(a.shape().begin(), a.shape().end() - 2),
                                 Shape(b.shape().begin(), b.shape().end() - 2), "matmul (batch dims)");
  Shape a_shape = batch, b_shape = batch, out_shape = batch;
  a_shape.insert(a_shape.end(), {m, k});
  b_shape.insert(b_shape.end(), {k, n});
  out_shape.insert(out_shape.end(), {m, n});
  Tensor out = empty(out_shape, {.dtype = a.dtype(), .device = a.device()});
  {
    NoGradGuard no_grad;
    backend_for(a.device()).matmul(expand(a, a_shape), expand(b, b_shape), out);
  }
  if (any_requires_grad({&a, &b})) {
    bool need_a = a.requires_grad(), need_b = b.requires_grad();
    SavedTensor saved_a(need_b ? a : Tensor()), saved_b(need_a ? b : Tensor());
    record("matmul", {a, b}, {out}, [saved_a, saved_b, need_a, need_b](const GradientList& g) {
      // dA = dC @ B^T, dB = A^T @ dC; broadcast batch dims are summed back by the node.
      Tensor grad_a = need_a ? batched_matmul(g[0], transpose(saved_b.unpack("matmul"), -1, -2)) : Tensor();
      Tensor grad_b = need_b ? batched_matmul(transpose(saved_a.unpack("matmul"), -1, -2), g[0]) : Tensor();
      return GradientList{grad_a, grad_b};
    });
  }
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_defined(a, "matmul", "a");
  check_defined(b, "matmul", "b");
  internal::check_same_device(a, b, "matmul");
  if (a.dim() == 0 || b.dim() == 0) {
    fail("matmul: both arguments need at least one dimension, got shapes ", a.shape(), " and ", b.shape());
  }
  if (a.dtype() != b.dtype()) {
    fail("matmul: expected both operands of one dtype, got ", a.dtype(), " and ", b.dtype());
  }
  if (!is_floating(a.dtype())) fail("matmul: expected floating operands, got ", a.dtype());
  int64_t inner_a = a.size(-1);
  int64_t inner_b = b.dim() == 1 ? b.size(0) : b.size(-2);
  if (inner_a != inner_b) {
    fail("matmul: shapes ", a.shape(), " and ", b.shape(), " cannot be multiplied (", inner_a, " columns vs ", inner_b,
         " rows)");
  }
  // 1-d operands become matrices, and the added dim is removed from the result (torch.matmul).
  Tensor left = a.dim() == 1 ? unsqueeze(a, 0) : a;
  Tensor right = b.dim() == 1 ? unsqueeze(b, 1) : b;
  Tensor out = batched_matmul(left, right);
  if (b.dim() == 1) out = squeeze(out, -1);
  if (a.dim() == 1) out = squeeze(out, a.dim() == 1 && b.dim() == 1 ? 0 : -2);
  return out;
}

}  // namespace dtrain
