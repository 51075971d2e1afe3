#include "core/backend.h"

#include <array>

#include "core/cpu/cpu_backend.h"
#include "core/cuda_device.h"
#include "core/grad_mode.h"
#include "core/ops/view.h"
#include "core/profiler_backend.h"
#include "core/profiler_recorder.h"

namespace dtrain {

bool is_comparison(BinaryOp op) {
  return op == BinaryOp::Eq || op == BinaryOp::Ne || op == BinaryOp::Lt || op == BinaryOp::Le || op == BinaryOp::Gt ||
         op == BinaryOp::Ge;
}

const char* binary_op_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "add";
    case BinaryOp::Sub: return "sub";
    case BinaryOp::Mul: return "mul";
    case BinaryOp::Div: return "div";
    case BinaryOp::Pow: return "pow";
    case BinaryOp::Maximum: return "maximum";
    case BinaryOp::Minimum: return "minimum";
    case BinaryOp::Eq: return "eq";
    case BinaryOp::Ne: return "ne";
    case BinaryOp::Lt: return "lt";
    case BinaryOp::Le: return "le";
    case BinaryOp::Gt: return "gt";
    case BinaryOp::Ge: return "ge";
    case BinaryOp::ReluBackward: return "relu_backward";
    case BinaryOp::GeluTanhBackward: return "gelu_tanh_backward";
    case BinaryOp::GeluErfBackward: return "gelu_erf_backward";
    case BinaryOp::TanhBackward: return "tanh_backward";
    case BinaryOp::SigmoidBackward: return "sigmoid_backward";
  }
  return "binary";
}

void check_matmul_contract(const Tensor& a, const Tensor& b, const Tensor& out) {
  if (a.dim() < 2 || b.dim() < 2 || out.dim() < 2) {
    fail("matmul kernel: expected operands of at least 2 dims, got shapes ", a.shape(), ", ", b.shape(), " -> ",
         out.shape());
  }
  if (a.size(-1) != b.size(-2) || a.size(-2) != out.size(-2) || b.size(-1) != out.size(-1)) {
    fail("matmul kernel: expected [..., M, K] @ [..., K, N] -> [..., M, N], got shapes ", a.shape(), " @ ", b.shape(),
         " -> ", out.shape());
  }
  if (a.dtype() != b.dtype() || a.dtype() != out.dtype() || !is_floating(a.dtype())) {
    fail("matmul kernel: expected one floating dtype for a, b and out, got ", a.dtype(), ", ", b.dtype(), " and ",
         out.dtype());
  }
  if (out.numel() > 0 && !out.is_contiguous()) {
    fail("matmul kernel: expected a contiguous out, got strides ", strides_str(out.strides()));
  }
}

void linear_from_kernels(Backend& kernels, const Tensor& rows, const Tensor& weight, const Tensor& bias,
                         LinearActivation activation, Tensor& out, Tensor& pre_activation) {
  NoGradGuard no_grad;  // the views below are kernel plumbing, never part of a graph
  Tensor& product = activation == LinearActivation::None ? out : pre_activation;
  kernels.matmul(rows, transpose(weight, 0, 1), product);
  if (bias.defined()) {
    Tensor in = product;
    kernels.binary(BinaryOp::Add, in, expand(bias, product.shape()), product);
  }
  if (activation == LinearActivation::GeluTanh) kernels.unary(UnaryOp::GeluTanh, product, out, 0.0);
}

const char* unary_op_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg: return "neg";
    case UnaryOp::Abs: return "abs";
    case UnaryOp::Sign: return "sign";
    case UnaryOp::Exp: return "exp";
    case UnaryOp::Log: return "log";
    case UnaryOp::Sqrt: return "sqrt";
    case UnaryOp::Rsqrt: return "rsqrt";
    case UnaryOp::Reciprocal: return "reciprocal";
    case UnaryOp::Tanh: return "tanh";
    case UnaryOp::Sigmoid: return "sigmoid";
    case UnaryOp::Relu: return "relu";
    case UnaryOp::GeluTanh: return "gelu_tanh";
    case UnaryOp::GeluErf: return "gelu";
    case UnaryOp::Sin: return "sin";
    case UnaryOp::Cos: return "cos";
    case UnaryOp::PowScalar: return "pow";
  }
  return "unary";
}

DType statistics_dtype(DType dtype) { return dtype == kBFloat16 || dtype == kFloat16 ? kFloat32 : dtype; }

namespace {
std::array<Backend*, kDeviceTypeCount>& backends() {
  static std::array<Backend*, kDeviceTypeCount> table{&cpu::backend(), nullptr};
  return table;
}
}  // namespace

void register_backend(DeviceType type, Backend* backend) { backends()[static_cast<int>(type)] = backend; }

Backend& backend_for(Device device) {
  Backend* backend = backends()[static_cast<int>(device.type)];
  if (backend == nullptr && device.is_cuda()) {
    cuda::detail::runtime();  // loads the CUDA backend, which registers its kernels; raises saying why not
    backend = backends()[static_cast<int>(device.type)];
  }
  if (backend == nullptr) {
    fail("no kernels for device ", device, ": this build of dtrain has no backend for it (configure with DTRAIN_CUDA=ON)");
  }
  // The profiler's whole cost when off: this branch, once per op.
  if (profiler::detail::recording()) [[unlikely]] return profiler::detail::profiling_backend(*backend);
  return *backend;
}

}  // namespace dtrain
