// Binary ops: broadcasting, type promotion, one kernel call, and the derivative of each.
#include "core/ops/elementwise.h"

#include <cmath>
#include <cstddef>
#include <vector>

#include "core/grad_mode.h"
#include "core/graph.h"
#include "core/ops/factory.h"
#include "core/ops/internal.h"
#include "core/ops/reduce.h"
#include "core/ops/unary.h"
#include "core/ops/view.h"

namespace dtrain {

namespace internal {

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  if (a.device() != b.device()) {
    fail(op, ": expected both tensors on one device, got ", a.device(), " and ", b.device());
  }
}

Tensor apply_binary(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  check_defined(a, name, "a");
  check_defined(b, name, "b");
  check_same_device(a, b, name);
  DType common = promote_types(a.dtype(), b.dtype());
  if (op == BinaryOp::Div && !is_floating(common)) common = kFloat32;  // true division, as torch.div
  if (common == kBool && !is_comparison(op)) {
    fail(name, ": arithmetic is not defined for bool tensors (convert with .to(kInt64) or .to(kFloat32))");
  }
  Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  NoGradGuard no_grad;
  Tensor left = expand(a.to(common), shape);
  Tensor right = expand(b.to(common), shape);
  Tensor out = empty(shape, {.dtype = is_comparison(op) ? kBool : common, .device = a.device()});
  backend_for(a.device()).binary(op, left, right, out);
  return out;
}

}  // namespace internal

using internal::apply_binary;

namespace {

// The dtype a Scalar operand takes next to a tensor of dtype (torch's rule for wrapped numbers:
// a float number makes an integer tensor's result float32; otherwise the tensor's dtype wins).
DType scalar_operand_dtype(DType tensor_dtype, const Scalar& scalar) {
  if (!scalar.is_integral() && !is_floating(tensor_dtype)) return kFloat32;
  if (tensor_dtype == kBool) return kInt64;
  return tensor_dtype;
}

Tensor wrap(const Tensor& like, Scalar value) {
  check_defined(like, "scalar op", "tensor");
  return scalar_tensor(value, scalar_operand_dtype(like.dtype(), value), like.device());
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = apply_binary(BinaryOp::Add, a, b, "add");
  if (any_requires_grad({&a, &b})) {
    record("add", {a, b}, {out}, [](const GradientList& g) { return GradientList{g[0], g[0]}; });
  }
  return out;
}

Tensor add(const Tensor& a, const Tensor& b, Scalar alpha) {
  if (alpha.to_double() == 1.0) return add(a, b);
  return add(a, mul(b, alpha));
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = apply_binary(BinaryOp::Sub, a, b, "sub");
  if (any_requires_grad({&a, &b})) {
    record("sub", {a, b}, {out}, [](const GradientList& g) { return GradientList{g[0], neg(g[0])}; });
  }
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = apply_binary(BinaryOp::Mul, a, b, "mul");
  if (any_requires_grad({&a, &b})) {
    bool need_a = a.requires_grad(), need_b = b.requires_grad();
    SavedTensor saved_a(need_b ? a : Tensor()), saved_b(need_a ? b : Tensor());
    record("mul", {a, b}, {out}, [saved_a, saved_b, need_a, need_b](const GradientList& g) {
      return GradientList{need_a ? mul(g[0], saved_b.unpack("mul")) : Tensor(),
                          need_b ? mul(g[0], saved_a.unpack("mul")) : Tensor()};
    });
  }
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = apply_binary(BinaryOp::Div, a, b, "div");
  if (any_requires_grad({&a, &b})) {
    SavedTensor saved_a(a), saved_b(b);
    record("div", {a, b}, {out}, [saved_a, saved_b](const GradientList& g) {
      Tensor denominator = saved_b.unpack("div");
      Tensor grad_a = div(g[0], denominator);
      Tensor grad_b = neg(div(mul(grad_a, saved_a.unpack("div")), denominator));
      return GradientList{grad_a, grad_b};
    });
  }
  return out;
}

Tensor pow(const Tensor& base, const Tensor& exponent) {
  Tensor out = apply_binary(BinaryOp::Pow, base, exponent, "pow");
  if (any_requires_grad({&base, &exponent})) {
    SavedTensor saved_base(base), saved_exponent(exponent), saved_out(out);
    record("pow", {base, exponent}, {out}, [saved_base, saved_exponent, saved_out](const GradientList& g) {
      Tensor x = saved_base.unpack("pow"), p = saved_exponent.unpack("pow");
      Tensor grad_base = mul(g[0], mul(p, pow(x, sub(p, ones_like(p)))));
      // d/dp x^p = x^p log x; at x = 0 the limit used by PyTorch is 0.
      Tensor log_x = where(eq(x, 0), zeros_like(x), log(x));
      Tensor grad_exponent = mul(g[0], mul(saved_out.unpack("pow"), log_x));
      return GradientList{grad_base, grad_exponent};
    });
  }
  return out;
}

namespace {
// maximum/minimum send the gradient to the chosen operand; a tie splits it in half, as PyTorch.
Tensor extremum(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  Tensor out = apply_binary(op, a, b, name);
  if (any_requires_grad({&a, &b})) {
    SavedTensor saved_a(a), saved_b(b);
    BinaryOp winner = op == BinaryOp::Maximum ? BinaryOp::Gt : BinaryOp::Lt;
    record(name, {a, b}, {out}, [saved_a, saved_b, winner, name](const GradientList& g) {
      Tensor x = saved_a.unpack(name), y = saved_b.unpack(name);
      DType dtype = g[0].dtype();
      Tensor weight_a = add(apply_binary(winner, x, y, name).to(dtype), mul(eq(x, y).to(dtype), 0.5));
      Tensor grad_a = mul(g[0], weight_a);
      return GradientList{grad_a, sub(g[0], grad_a)};
    });
  }
  return out;
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) { return extremum(BinaryOp::Maximum, a, b, "maximum"); }
Tensor minimum(const Tensor& a, const Tensor& b) { return extremum(BinaryOp::Minimum, a, b, "minimum"); }

Tensor add(const Tensor& a, Scalar b) { return add(a, wrap(a, b)); }
Tensor sub(const Tensor& a, Scalar b) { return sub(a, wrap(a, b)); }
Tensor mul(const Tensor& a, Scalar b) { return mul(a, wrap(a, b)); }
Tensor div(const Tensor& a, Scalar b) { return div(a, wrap(a, b)); }

Tensor eq(const Tensor& a, const Tensor& b) { return apply_binary(BinaryOp::Eq, a, b, "eq"); }
Tensor ne(const Tensor& a, const Tensor& b) { return apply_binary(BinaryOp::Ne, a, b, "ne"); }
Tensor lt(const Tensor& a, const Tensor& b) { return apply_binary(BinaryOp::Lt, a, b, "lt"); }
Tensor le(const Tensor& a, const Tensor& b) { return apply_binary(BinaryOp::Le, a, b, "le"); }
Tensor gt(const Tensor& a, const Tensor& b) { return apply_binary(BinaryOp::Gt, a, b, "gt"); }
Tensor ge(const Tensor& a, const Tensor& b) { return apply_binary(BinaryOp::Ge, a, b, "ge"); }
Tensor eq(const Tensor& a, Scalar b) { return eq(a, wrap(a, b)); }
Tensor ne(const Tensor& a, Scalar b) { return ne(a, wrap(a, b)); }
Tensor lt(const Tensor& a, Scalar b) { return lt(a, wrap(a, b)); }
Tensor le(const Tensor& a, Scalar b) { return le(a, wrap(a, b)); }
Tensor gt(const Tensor& a, Scalar b) { return gt(a, wrap(a, b)); }
Tensor ge(const Tensor& a, Scalar b) { return ge(a, wrap(a, b)); }

Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b) {
  check_defined(condition, "where", "condition");
  check_defined(a, "where", "a");
  check_defined(b, "where", "b");
  if (condition.dtype() != kBool) fail("where: expected a bool condition, got ", condition.dtype());
  internal::check_same_device(condition, a, "where");
  internal::check_same_device(a, b, "where");
  Shape shape = broadcast_shapes(broadcast_shapes(condition.shape(), a.shape(), "where"), b.shape(), "where");
  DType dtype = promote_types(a.dtype(), b.dtype());
  Tensor out = empty(shape, {.dtype = dtype, .device = a.device()});
  {
    NoGradGuard no_grad;
    backend_for(a.device()).where(expand(condition, shape), expand(a.to(dtype), shape), expand(b.to(dtype), shape), out);
  }
  if (any_requires_grad({&a, &b})) {
    Tensor mask = condition;  // a bool tensor: autograd never tracks it
    // Only the gradients that flow somewhere are computed: masked_fill's fill value never needs
    // one. The zero is one broadcast value, not a tensor of g's size.
    const bool need_a = a.requires_grad(), need_b = b.requires_grad();
    record("where", {a, b}, {out}, [mask, need_a, need_b](const GradientList& g) {
      Tensor zero = scalar_tensor(0, g[0].dtype(), g[0].device());
      return GradientList{need_a ? where(mask, g[0], zero) : Tensor(), need_b ? where(mask, zero, g[0]) : Tensor()};
    });
  }
  return out;
}

Tensor masked_fill(const Tensor& input, const Tensor& mask, Scalar value) {
  check_defined(input, "masked_fill", "input");
  check_defined(mask, "masked_fill", "mask");
  if (mask.dtype() != kBool) fail("masked_fill: expected a bool mask, got ", mask.dtype());
  Shape shape = broadcast_shapes(input.shape(), mask.shape(), "masked_fill");
  if (shape != input.shape()) {
    fail("masked_fill: the mask's shape ", mask.shape(), " does not broadcast to the input's shape ", input.shape());
  }
  return where(mask, scalar_tensor(value, input.dtype(), input.device()), input);
}

Tensor clamp(const Tensor& input, Scalar low, Scalar high) {
  check_defined(input, "clamp", "input");
  if (low.to_double() > high.to_double()) fail("clamp: expected low <= high, got ", low, " and ", high);
  Tensor low_tensor = scalar_tensor(low, input.dtype(), input.device());
  Tensor high_tensor = scalar_tensor(high, input.dtype(), input.device());
  Tensor out;
  {
    NoGradGuard no_grad;
    out = where(lt(input, low_tensor), low_tensor, where(gt(input, high_tensor), high_tensor, input));
  }
  if (any_requires_grad({&input})) {
    SavedTensor saved(input);
    record("clamp", {input}, {out}, [saved, low_tensor, high_tensor](const GradientList& g) {
      Tensor x = saved.unpack("clamp");
      Tensor zero = zeros_like(g[0]);
      return GradientList{where(lt(x, low_tensor), zero, where(gt(x, high_tensor), zero, g[0]))};
    });
  }
  return out;
}

bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol) {
  check_defined(a, "allclose", "a");
  check_defined(b, "allclose", "b");
  if (broadcast_shapes(a.shape(), b.shape(), "allclose") != a.shape() || a.shape() != b.shape()) return false;
  std::vector<double> left = a.to_vector<double>(), right = b.to_vector<double>();
  for (size_t i = 0; i < left.size(); ++i) {
    if (std::isnan(left[i]) || std::isnan(right[i])) return false;
    if (std::abs(left[i] - right[i]) > atol + rtol * std::abs(right[i])) return false;
  }
  return true;
}

bool equal(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  return a.to_vector<double>() == b.to_vector<double>();
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, Scalar b) { return add(a, b); }
Tensor operator-(const Tensor& a, Scalar b) { return sub(a, b); }
Tensor operator*(const Tensor& a, Scalar b) { return mul(a, b); }
Tensor operator/(const Tensor& a, Scalar b) { return div(a, b); }
Tensor operator+(Scalar a, const Tensor& b) { return add(b, a); }
Tensor operator-(Scalar a, const Tensor& b) { return sub(wrap(b, a), b); }
Tensor operator*(Scalar a, const Tensor& b) { return mul(b, a); }
Tensor operator/(Scalar a, const Tensor& b) { return div(wrap(b, a), b); }
Tensor operator-(const Tensor& a) { return neg(a); }
Tensor operator<(const Tensor& a, const Tensor& b) { return lt(a, b); }
Tensor operator<=(const Tensor& a, const Tensor& b) { return le(a, b); }
Tensor operator>(const Tensor& a, const Tensor& b) { return gt(a, b); }
Tensor operator>=(const Tensor& a, const Tensor& b) { return ge(a, b); }
Tensor operator<(const Tensor& a, Scalar b) { return lt(a, b); }
Tensor operator<=(const Tensor& a, Scalar b) { return le(a, b); }
Tensor operator>(const Tensor& a, Scalar b) { return gt(a, b); }
Tensor operator>=(const Tensor& a, Scalar b) { return ge(a, b); }

}  // namespace dtrain
