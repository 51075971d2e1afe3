#include "core/backend.h"

#include <array>

#include "core/cpu/cpu_backend.h"
#include "core/cuda_device.h"

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
  return *backend;
}

}  // namespace dtrain
