// Unary math: one kernel call each, and the derivative of each.
#include "core/ops/unary.h"

#include "core/graph.h"
#include "core/ops/elementwise.h"
#include "core/ops/factory.h"
#include "core/ops/internal.h"

namespace dtrain {

namespace internal {
Tensor apply_unary(UnaryOp op, const Tensor& x, double parameter) {
  Tensor out = empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
  backend_for(x.device()).unary(op, x, out, parameter);
  return out;
}
}  // namespace internal

namespace {

using internal::apply_binary;
using internal::apply_unary;

// Integer input to a floating function (exp of an Int64 tensor) computes in float32, as PyTorch.
Tensor floating_input(const Tensor& x, const char* name) {
  check_defined(x, name, "x");
  if (x.dtype() == kBool) fail(name, ": not defined for bool tensors");
  return is_floating(x.dtype()) ? x : x.to(kFloat32);
}

// An op whose derivative needs only its output: d = f(out) * g.
template <typename Derivative>
Tensor unary_from_output(UnaryOp op, const Tensor& input, const char* name, Derivative derivative) {
  Tensor x = floating_input(input, name);
  Tensor out = apply_unary(op, x);
  if (any_requires_grad({&x})) {
    SavedTensor saved(out);
    record(name, {x}, {out}, [saved, name, derivative](const GradientList& g) {
      return GradientList{derivative(saved.unpack(name), g[0])};
    });
  }
  return out;
}

// An op whose derivative needs its input: d = f(x) * g.
template <typename Derivative>
Tensor unary_from_input(UnaryOp op, const Tensor& input, const char* name, Derivative derivative,
                        bool floating_only = true) {
  Tensor x = floating_only ? floating_input(input, name) : input;
  check_defined(x, name, "x");
  Tensor out = apply_unary(op, x);
  if (any_requires_grad({&x})) {
    SavedTensor saved(x);
    record(name, {x}, {out}, [saved, name, derivative](const GradientList& g) {
      return GradientList{derivative(saved.unpack(name), g[0])};
    });
  }
  return out;
}

}  // namespace

Tensor neg(const Tensor& x) {
  check_defined(x, "neg", "x");
  Tensor out = apply_unary(UnaryOp::Neg, x);
  if (any_requires_grad({&x})) record("neg", {x}, {out}, [](const GradientList& g) { return GradientList{neg(g[0])}; });
  return out;
}

Tensor abs(const Tensor& x) {
  return unary_from_input(UnaryOp::Abs, x, "abs", [](const Tensor& input, const Tensor& g) { return mul(g, sign(input)); },
                          false);
}

Tensor sign(const Tensor& x) {  // piecewise constant: no gradient flows
  check_defined(x, "sign", "x");
  return apply_unary(UnaryOp::Sign, x);
}

Tensor exp(const Tensor& x) {
  return unary_from_output(UnaryOp::Exp, x, "exp", [](const Tensor& out, const Tensor& g) { return mul(g, out); });
}

Tensor log(const Tensor& x) {
  return unary_from_input(UnaryOp::Log, x, "log", [](const Tensor& input, const Tensor& g) { return div(g, input); });
}

Tensor sqrt(const Tensor& x) {
  return unary_from_output(UnaryOp::Sqrt, x, "sqrt",
                           [](const Tensor& out, const Tensor& g) { return div(g, mul(out, 2.0)); });
}

Tensor rsqrt(const Tensor& x) {
  return unary_from_output(UnaryOp::Rsqrt, x, "rsqrt", [](const Tensor& out, const Tensor& g) {
    return mul(g, mul(pow(out, 3.0), -0.5));
  });
}

Tensor reciprocal(const Tensor& x) {
  return unary_from_output(UnaryOp::Reciprocal, x, "reciprocal",
                           [](const Tensor& out, const Tensor& g) { return neg(mul(g, mul(out, out))); });
}

Tensor square(const Tensor& x) { return pow(x, 2.0); }

Tensor tanh(const Tensor& x) {
  return unary_from_output(UnaryOp::Tanh, x, "tanh", [](const Tensor& out, const Tensor& g) {
    return apply_binary(BinaryOp::TanhBackward, out, g, "tanh_backward");
  });
}

Tensor sigmoid(const Tensor& x) {
  return unary_from_output(UnaryOp::Sigmoid, x, "sigmoid", [](const Tensor& out, const Tensor& g) {
    return apply_binary(BinaryOp::SigmoidBackward, out, g, "sigmoid_backward");
  });
}

Tensor relu(const Tensor& x) {
  return unary_from_input(
      UnaryOp::Relu, x, "relu",
      [](const Tensor& input, const Tensor& g) { return apply_binary(BinaryOp::ReluBackward, input, g, "relu_backward"); },
      false);
}

Tensor gelu(const Tensor& x, GeluApproximation approximation) {
  if (approximation == GeluApproximation::Tanh) {
    return unary_from_input(UnaryOp::GeluTanh, x, "gelu", [](const Tensor& input, const Tensor& g) {
      return apply_binary(BinaryOp::GeluTanhBackward, input, g, "gelu_backward");
    });
  }
  return unary_from_input(UnaryOp::GeluErf, x, "gelu", [](const Tensor& input, const Tensor& g) {
    return apply_binary(BinaryOp::GeluErfBackward, input, g, "gelu_backward");
  });
}

Tensor sin(const Tensor& x) {
  return unary_from_input(UnaryOp::Sin, x, "sin", [](const Tensor& input, const Tensor& g) { return mul(g, cos(input)); });
}

Tensor cos(const Tensor& x) {
  return unary_from_input(UnaryOp::Cos, x, "cos",
                          [](const Tensor& input, const Tensor& g) { return neg(mul(g, sin(input))); });
}

Tensor pow(const Tensor& x, Scalar exponent) {
  check_defined(x, "pow", "x");
  if (x.dtype() == kBool) fail("pow: not defined for bool tensors");
  if (exponent.is_integral() && exponent.to_int64() < 0 && !is_floating(x.dtype())) {
    // As PyTorch: the result would be 0 for almost every base, which is never what was meant.
    fail("pow: expected a non-negative exponent for an integer tensor (", x.dtype(), "), got ", exponent.to_int64(),
         "; convert the tensor to a floating dtype first");
  }
  Tensor input = (!exponent.is_integral() && !is_floating(x.dtype())) ? x.to(kFloat32) : x;
  double p = exponent.to_double();
  Tensor out = apply_unary(UnaryOp::PowScalar, input, p);
  if (any_requires_grad({&input})) {
    SavedTensor saved(input);
    record("pow", {input}, {out}, [saved, p](const GradientList& g) {
      Tensor base = saved.unpack("pow");
      if (p == 0.0) return GradientList{zeros_like(g[0])};
      return GradientList{mul(g[0], mul(pow(base, p - 1.0), p))};
    });
  }
  return out;
}

}  // namespace dtrain
