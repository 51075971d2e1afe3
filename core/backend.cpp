#include "core/backend.h"

#include <array>
#include <cstddef>
#include <string>
#include <utility>

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

const char* fused_kernel_name(FusedKernel kernel) {
  switch (kernel) {
    case FusedKernel::LayerNorm: return "layer_norm";
    case FusedKernel::AddLayerNorm: return "add_layer_norm";
    case FusedKernel::CrossEntropy: return "cross_entropy";
    case FusedKernel::AdamUpdate: return "adam_update";
    case FusedKernel::Attention: return "attention";
    case FusedKernel::Convolution2d: return "convolution2d";
  }
  return "fused kernel";
}

KernelSupport kernel_takes_case() { return KernelSupport{.supported = true, .reason = ""}; }

KernelSupport kernel_declines_case(std::string reason) {
  return KernelSupport{.supported = false, .reason = std::move(reason)};
}

void require_kernel_support(Backend& backend, const KernelCase& query, const char* entry) {
  KernelSupport answer = backend.supports(query);
  if (answer.supported) return;
  const Tensor* first = nullptr;
  for (const Tensor& tensor : query.tensors) {
    if (tensor.defined()) {
      first = &tensor;
      break;
    }
  }
  fail(entry, ": expected a case this backend's fused kernel takes (ask Backend::supports and compose the fallback "
       "when it declines), got one it declines",
       first != nullptr ? detail::concat(" on ", first->device()) : std::string(), ": ", answer.reason);
}

namespace {

// The names of each kernel's KernelCase tensors, in order.
std::vector<const char*> tensor_names(FusedKernel kernel) {
  switch (kernel) {
    case FusedKernel::LayerNorm: return {"x", "weight", "bias"};
    case FusedKernel::AddLayerNorm: return {"x", "residual", "weight", "bias"};
    case FusedKernel::CrossEntropy: return {"logits", "targets"};
    case FusedKernel::AdamUpdate: return {"param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "master"};
    case FusedKernel::Attention: return {"q", "k", "v"};
    case FusedKernel::Convolution2d: return {"x", "weight"};
  }
  return {};
}

// Why tensor (named name) is not where and how a fused kernel reads it, or "".
std::string layout_problem(const Tensor& tensor, const char* name, DeviceType type, Device device) {
  if (tensor.device().type != type) return detail::concat(name, " is on ", tensor.device());
  if (tensor.device() != device) return detail::concat(name, " is on ", tensor.device(), ", not ", device);
  if (!tensor.is_contiguous()) return detail::concat(name, " is not contiguous (strides ", strides_str(tensor.strides()), ")");
  if (!tensor.storage()->is_resident()) return detail::concat(name, "'s storage is offloaded, not in memory");
  return "";
}

bool dtype_taken(DType dtype, bool takes_16_bit) {
  return takes_16_bit ? is_floating(dtype) : (dtype == kFloat32 || dtype == kFloat64);
}

const char* dtypes_taken(bool takes_16_bit) {
  return takes_16_bit ? "floating dtypes" : "float32 and float64 only";
}

}  // namespace

void check_kernel_case_arity(const KernelCase& query) {
  const std::vector<const char*> names = tensor_names(query.kernel);
  if (query.tensors.size() != names.size()) {
    std::string expected;
    for (const char* name : names) expected += detail::concat(expected.empty() ? "" : ", ", name);
    fail("Backend::supports(", fused_kernel_name(query.kernel), "): expected ", names.size(), " tensors {", expected,
         "}, got ", query.tensors.size());
  }
  for (size_t i = 0; i < names.size(); ++i) {
    const bool optional = std::string(names[i]) == "weight" || std::string(names[i]) == "bias" ||
                          std::string(names[i]) == "max_exp_avg_sq" || std::string(names[i]) == "master";
    const bool weight_is_required = query.kernel == FusedKernel::Convolution2d;
    if (!query.tensors[i].defined() && !(optional && !weight_is_required)) {
      fail("Backend::supports(", fused_kernel_name(query.kernel), "): expected a defined ", names[i], ", got none");
    }
  }
}

KernelSupport fused_training_kernel_support(const KernelCase& query, DeviceType type, bool takes_16_bit) {
  check_kernel_case_arity(query);
  const std::vector<const char*> names = tensor_names(query.kernel);
  const std::vector<Tensor>& t = query.tensors;
  const Device device = t[0].device();
  for (size_t i = 0; i < t.size(); ++i) {
    if (!t[i].defined()) continue;
    if (std::string problem = layout_problem(t[i], names[i], type, device); !problem.empty()) {
      return kernel_declines_case(problem);
    }
  }
  const DType dtype = t[0].dtype();
  auto declined_dtype = [&](const char* name, DType got) {
    return kernel_declines_case(detail::concat(name, " is ", got, ": this kernel takes ", dtypes_taken(takes_16_bit)));
  };
  auto mismatch = [&](size_t i, DType expected) {
    return kernel_declines_case(detail::concat(names[i], " is ", t[i].dtype(), ", expected ", expected, " (", names[0],
                                               " is ", dtype, ")"));
  };
  switch (query.kernel) {
    case FusedKernel::LayerNorm:
    case FusedKernel::AddLayerNorm: {
      if (!dtype_taken(dtype, takes_16_bit)) return declined_dtype("x", dtype);
      if (query.kernel == FusedKernel::AddLayerNorm && t[1].shape() != t[0].shape()) {
        return kernel_declines_case(detail::concat("residual's shape ", t[1].shape(), " is not x's ", t[0].shape()));
      }
      for (size_t i = 1; i < t.size(); ++i) {
        if (t[i].defined() && t[i].dtype() != dtype) return mismatch(i, dtype);
      }
      return kernel_takes_case();
    }
    case FusedKernel::CrossEntropy: {
      if (!dtype_taken(dtype, takes_16_bit)) return declined_dtype("logits", dtype);
      if (t[0].dim() != 2 || t[1].dim() != 1 || t[1].size(0) != t[0].size(0)) {
        return kernel_declines_case(detail::concat("expected logits [rows, classes] and targets [rows], got ",
                                                   t[0].shape(), " and ", t[1].shape()));
      }
      if (t[1].dtype() != kInt64) return kernel_declines_case(detail::concat("targets are ", t[1].dtype(), ", not Int64"));
      return kernel_takes_case();
    }
    case FusedKernel::AdamUpdate: {
      const bool master = t[5].defined();
      if (!is_floating(dtype) || (!master && !dtype_taken(dtype, takes_16_bit))) {
        return declined_dtype(master ? "param" : "param (no master copy)", dtype);
      }
      const DType state = statistics_dtype(dtype);
      for (size_t i = 1; i < t.size(); ++i) {
        if (!t[i].defined()) continue;
        if (t[i].numel() != t[0].numel()) {
          return kernel_declines_case(detail::concat(names[i], " has ", t[i].numel(), " elements, param ", t[0].numel()));
        }
        if (t[i].dtype() != (i == 1 ? dtype : state)) return mismatch(i, i == 1 ? dtype : state);
      }
      return kernel_takes_case();
    }
    case FusedKernel::Attention:
    case FusedKernel::Convolution2d: break;
  }
  fail("fused_training_kernel_support: expected a layer_norm, add_layer_norm, cross_entropy or adam_update case, got ",
       fused_kernel_name(query.kernel));
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
