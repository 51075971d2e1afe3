// The kernel-table entries of a transformer block's softmax and residual LayerNorm on CUDA
// (core/backend.h: causal_softmax and its backward, add_layer_norm, layer_norm_backward's
// grad_sum) against the CPU, per floating dtype. Float32 and float64 are checked against the CPU
// kernels in the same dtype; bfloat16 and float16 against float64 on the CPU from the same
// 16-bit-rounded inputs, rounded to the dtype at the end, so only the kernels' own rounding
// separates the two. The masked (future) columns hold NaN in the inputs: the CUDA kernels must
// never read them.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "core/backend.h"
#include "layers/layers.h"
#include "tests/cuda/cuda_test_support.h"

using namespace dtrain;
using namespace dtrain::cuda_test;

namespace {


// Mean and rstd, in the statistics dtype (float32 for the 16-bit inputs, summed in float on CUDA).
Tolerance statistics_tolerance(DType dtype) {
  return statistics_dtype(dtype) == kFloat64 ? tolerance_for(kFloat64) : fused_tolerance(kFloat32);
}

const Tolerance kExact{0.0, 0.0};

Backend& cpu_kernels() { return backend_for(Device::cpu()); }
Backend& gpu_kernels() { return backend_for(gpu()); }

// scores with NaN in every masked column (column > row of each [T, T] matrix).
Tensor with_nan_future(const Tensor& scores) {
  return masked_fill(scores, causal_mask(scores.size(-1), scores.device()), std::numeric_limits<double>::quiet_NaN());
}

// Every masked column of result [..., T, T] must hold exactly 0.
void require_future_zero(const Tensor& result, const std::string& what) {
  const int64_t length = result.size(-1);
  const std::vector<double> values = result.to_vector<double>();
  for (size_t k = 0; k < values.size(); ++k) {
    const int64_t column = static_cast<int64_t>(k) % length, row = static_cast<int64_t>(k) / length % length;
    if (column > row && values[k] != 0.0) {
      std::ostringstream message;
      message << what << ": masked element " << k << " (row " << row << ", column " << column << ") is " << values[k];
      FAIL(message.str());
    }
  }
  SUCCEED();
}

// The contract's backward in double on the host: dx = y * (g - sum over visible columns of g * y).
Tensor causal_softmax_backward_in_double(const Tensor& grad_output, const Tensor& output) {
  const int64_t length = output.size(-1);
  const std::vector<double> g = grad_output.to_vector<double>();
  const std::vector<double> y = output.to_vector<double>();
  std::vector<double> dx(y.size(), 0.0);
  for (size_t start = 0; start < y.size(); start += static_cast<size_t>(length)) {
    const size_t visible = static_cast<size_t>(static_cast<int64_t>(start) / length % length + 1);
    double total = 0.0;
    for (size_t i = 0; i < visible; ++i) total += g[start + i] * y[start + i];
    for (size_t i = 0; i < visible; ++i) dx[start + i] = y[start + i] * (g[start + i] - total);
  }
  return from_vector(dx, output.shape(), {.dtype = kFloat64});
}

// Batch dims, and T = 1, 5, 37 and 300: rows shorter than a warp, between, and longer than the
// row-block's 256 threads (neither a multiple of 32).
const std::vector<Shape>& causal_shapes() {
  static const std::vector<Shape> shapes{{4, 1, 1}, {2, 3, 5, 5}, {2, 37, 37}, {1, 2, 300, 300}};
  return shapes;
}

std::string case_name(const char* op, DType dtype, const Shape& shape) {
  std::ostringstream name;
  name << op << " " << dtype_name(dtype) << " " << shape;
  return name.str();
}

}  // namespace

TEST_CASE("cuda causal_softmax kernels: forward and backward match the CPU in every floating dtype without reading the future") {
  for (DType dtype : floating_dtypes()) {
    for (const Shape& shape : causal_shapes()) {
      const std::string what = case_name("causal_softmax", dtype, shape);
      const Tensor scores = wavy(shape, kFloat64, 4.0, 0.3).to(dtype);
      Tensor out = empty(shape, {.dtype = dtype, .device = gpu()});
      gpu_kernels().causal_softmax(with_nan_future(scores).to(gpu()), out);
      // The composed definition on the CPU, and the CPU kernel.
      const Tensor composed = detail::causal_softmax_composed(scores.to(reference_dtype(dtype))).to(dtype);
      require_match(out, composed, tolerance_for(dtype), what + " output against masked_fill + softmax");
      Tensor cpu_out = empty(shape, {.dtype = dtype});
      cpu_kernels().causal_softmax(scores, cpu_out);
      require_match(out, cpu_out, tolerance_for(dtype), what + " output against the CPU kernel");
      require_future_zero(out, what + " output");

      // Both devices differentiate the same (CUDA) output.
      const Tensor grad_output = wavy(shape, kFloat64, 1.0, 1.7).to(dtype);
      const Tensor output = out.to(Device::cpu());
      Tensor grad_input = empty(shape, {.dtype = dtype, .device = gpu()});
      gpu_kernels().causal_softmax_backward(with_nan_future(grad_output).to(gpu()), out, grad_input);
      require_match(grad_input, causal_softmax_backward_in_double(grad_output, output).to(dtype), tolerance_for(dtype),
                    what + " gradient against the formula in double");
      Tensor cpu_grad_input = empty(shape, {.dtype = dtype});
      cpu_kernels().causal_softmax_backward(grad_output, output, cpu_grad_input);
      require_match(grad_input, cpu_grad_input, tolerance_for(dtype), what + " gradient against the CPU kernel");
      require_future_zero(grad_input, what + " gradient");
    }
  }
}

TEST_CASE("cuda causal_softmax op: forward and gradient match the CPU in every floating dtype") {
  for (DType dtype : floating_dtypes()) {
    for (const Shape& shape : {Shape{2, 5, 5}, Shape{2, 3, 37, 37}}) {
      const std::string what = case_name("causal_softmax op", dtype, shape);
      const Tensor rounded = wavy(shape, kFloat64, 4.0, 0.9).to(dtype);
      Tensor cpu_scores = rounded.to(reference_dtype(dtype)).detach().set_requires_grad(true);
      Tensor gpu_scores = rounded.to(gpu()).detach().set_requires_grad(true);
      Tensor cpu_out = causal_softmax(cpu_scores);
      Tensor gpu_out = causal_softmax(gpu_scores);
      require_match(gpu_out, cpu_out.to(dtype), tolerance_for(dtype), what + " output");
      const Tensor upstream = wavy(shape, kFloat64, 1.0, 2.3).to(dtype);
      sum(mul(cpu_out, upstream.to(reference_dtype(dtype)))).backward();
      sum(mul(gpu_out, upstream.to(gpu()))).backward();
      require_match(gpu_scores.grad(), cpu_scores.grad().to(dtype), tolerance_for(dtype), what + " gradient");
      require_future_zero(gpu_scores.grad(), what + " gradient");
    }
  }
}

namespace {

struct AddLayerNormCase {
  int64_t rows;
  int64_t size;
  bool affine;
};

// 1000 columns: more than the block's 512 threads; 150 rows: more than one chunk of weight
// partials; 5 and 33 columns: fewer than a warp, and one past it.
const std::vector<AddLayerNormCase>& add_layer_norm_cases() {
  static const std::vector<AddLayerNormCase> cases{{6, 5, true}, {37, 1000, true}, {150, 24, true}, {7, 33, false}};
  return cases;
}

constexpr double kEps = 1e-5;

// The inputs of one case in the dtype, on the CPU; weight and bias undefined without affine.
struct AddLayerNormInputs {
  Tensor x, residual, weight, bias, grad_out, grad_sum;
};

AddLayerNormInputs add_layer_norm_inputs(const AddLayerNormCase& c, DType dtype) {
  AddLayerNormInputs inputs;
  inputs.x = wavy({c.rows, c.size}, kFloat64, 2.0, 0.3).to(dtype);
  inputs.residual = wavy({c.rows, c.size}, kFloat64, 1.5, 1.3).to(dtype);
  if (c.affine) {
    inputs.weight = wavy({c.size}, kFloat64, 1.0, 1.1).to(dtype);
    inputs.bias = wavy({c.size}, kFloat64, 0.5, 2.0).to(dtype);
  }
  inputs.grad_out = wavy({c.rows, c.size}, kFloat64, 1.0, 2.1).to(dtype);
  inputs.grad_sum = wavy({c.rows, c.size}, kFloat64, 0.8, 0.6).to(dtype);
  return inputs;
}

Tensor on(const Tensor& tensor, Device device) { return tensor.defined() ? tensor.to(device) : Tensor(); }
Tensor as_dtype(const Tensor& tensor, DType dtype) { return tensor.defined() ? tensor.to(dtype) : Tensor(); }

// add_layer_norm's outputs (sum and out in the input dtype, mean and rstd in its statistics dtype).
struct Normalized {
  Tensor sum, out, mean, rstd;
};

Normalized add_layer_norm_on(Backend& kernels, const AddLayerNormInputs& inputs, Device device) {
  const Shape shape = inputs.x.shape();
  const DType dtype = inputs.x.dtype();
  Normalized result{empty(shape, {.dtype = dtype, .device = device}), empty(shape, {.dtype = dtype, .device = device}),
                    empty({shape[0]}, {.dtype = statistics_dtype(dtype), .device = device}),
                    empty({shape[0]}, {.dtype = statistics_dtype(dtype), .device = device})};
  kernels.add_layer_norm(inputs.x.to(device), inputs.residual.to(device), on(inputs.weight, device),
                         on(inputs.bias, device), kEps, result.sum, result.out, result.mean, result.rstd);
  return result;
}

// The CPU reference: the CPU kernel in float32 and float64; for the 16-bit dtypes the sum rounded
// by add() in the dtype, then the float64 CPU layer_norm of it (out not rounded back).
Normalized reference_add_layer_norm(const AddLayerNormInputs& inputs) {
  const DType dtype = inputs.x.dtype();
  if (!is_16_bit(dtype)) return add_layer_norm_on(cpu_kernels(), inputs, Device::cpu());
  const Shape shape = inputs.x.shape();
  Normalized result{add(inputs.x, inputs.residual), empty(shape, {.dtype = kFloat64}), empty({shape[0]}, {.dtype = kFloat64}),
                    empty({shape[0]}, {.dtype = kFloat64})};
  cpu_kernels().layer_norm(result.sum.to(kFloat64), as_dtype(inputs.weight, kFloat64), as_dtype(inputs.bias, kFloat64), kEps,
                           result.out, result.mean, result.rstd);
  return result;
}

// layer_norm_backward's outputs; grad_weight and grad_bias undefined without affine.
struct Gradients {
  Tensor grad_x, grad_weight, grad_bias;
};

// layer_norm_backward on the tensors' device, in the dtype of x, with or without grad_sum.
Gradients layer_norm_backward_on(Backend& kernels, const Tensor& grad_out, const Tensor& x, const Tensor& weight,
                                 const Normalized& forward, const Tensor& grad_sum) {
  const TensorOptions options{.dtype = x.dtype(), .device = x.device()};
  Gradients result{empty(x.shape(), options), weight.defined() ? empty(weight.shape(), options) : Tensor(),
                   weight.defined() ? empty(weight.shape(), options) : Tensor()};
  kernels.layer_norm_backward(grad_out, x, weight, forward.mean, forward.rstd, grad_sum, result.grad_x,
                              result.grad_weight, result.grad_bias);
  return result;
}

std::string case_name(const char* op, DType dtype, const AddLayerNormCase& c) {
  return std::string(op) + " " + dtype_name(dtype) + " [" + std::to_string(c.rows) + ", " + std::to_string(c.size) + "]" +
         (c.affine ? "" : " no affine");
}

}  // namespace

TEST_CASE("cuda add_layer_norm kernel: the rounded sum, output and statistics match the CPU in every floating dtype") {
  for (DType dtype : floating_dtypes()) {
    for (const AddLayerNormCase& c : add_layer_norm_cases()) {
      const std::string what = case_name("add_layer_norm", dtype, c);
      const AddLayerNormInputs inputs = add_layer_norm_inputs(c, dtype);
      const Normalized gpu_result = add_layer_norm_on(gpu_kernels(), inputs, gpu());
      const Normalized reference = reference_add_layer_norm(inputs);
      // Rounded to the dtype once, as the CPU's add() rounds: the same bits.
      require_match(gpu_result.sum, add(inputs.x, inputs.residual), kExact, what + " sum against add() on the CPU");
      require_match(gpu_result.out, reference.out.to(dtype), fused_tolerance(dtype), what + " output");
      const DType statistics = statistics_dtype(dtype);
      require_match(gpu_result.mean, reference.mean.to(statistics), statistics_tolerance(dtype), what + " mean");
      require_match(gpu_result.rstd, reference.rstd.to(statistics), statistics_tolerance(dtype), what + " rstd");

      // Exactly layer_norm of the sum on CUDA: the same kernel reading the same rounded values.
      Tensor out = empty_like(gpu_result.out), mean = empty_like(gpu_result.mean), rstd = empty_like(gpu_result.rstd);
      gpu_kernels().layer_norm(gpu_result.sum, on(inputs.weight, gpu()), on(inputs.bias, gpu()), kEps, out, mean, rstd);
      require_match(gpu_result.out, out, kExact, what + " output against CUDA layer_norm of the sum");
      require_match(gpu_result.mean, mean, kExact, what + " mean against CUDA layer_norm of the sum");
      require_match(gpu_result.rstd, rstd, kExact, what + " rstd against CUDA layer_norm of the sum");
    }
  }
}

TEST_CASE("cuda layer_norm_backward kernel: grad_sum is added to the rounded grad_x, matching the CPU in every floating dtype") {
  for (DType dtype : floating_dtypes()) {
    for (const AddLayerNormCase& c : add_layer_norm_cases()) {
      const std::string what = case_name("layer_norm_backward", dtype, c);
      const AddLayerNormInputs inputs = add_layer_norm_inputs(c, dtype);
      const Normalized gpu_forward = add_layer_norm_on(gpu_kernels(), inputs, gpu());
      const Tensor gpu_grad_out = inputs.grad_out.to(gpu()), gpu_weight = on(inputs.weight, gpu());
      const Tensor gpu_grad_sum = inputs.grad_sum.to(gpu());
      const Gradients fused = layer_norm_backward_on(gpu_kernels(), gpu_grad_out, gpu_forward.sum, gpu_weight,
                                                     gpu_forward, gpu_grad_sum);
      const Gradients plain = layer_norm_backward_on(gpu_kernels(), gpu_grad_out, gpu_forward.sum, gpu_weight,
                                                     gpu_forward, Tensor());
      // The contract on the device itself: the separate add of grad_sum to the rounded grad_x.
      require_match(fused.grad_x, add(plain.grad_x, gpu_grad_sum), kExact, what + " grad_x against grad_x + grad_sum on CUDA");
      if (c.affine) {
        require_match(fused.grad_weight, plain.grad_weight, kExact, what + " grad_weight unchanged by grad_sum");
        require_match(fused.grad_bias, plain.grad_bias, kExact, what + " grad_bias unchanged by grad_sum");
      }

      // Against the CPU, from the CPU's forward of the same inputs.
      const DType reference = reference_dtype(dtype);
      const Normalized cpu_forward = reference_add_layer_norm(inputs);
      const Tensor cpu_sum = cpu_forward.sum.to(reference), cpu_grad_out = inputs.grad_out.to(reference);
      const Tensor cpu_weight = as_dtype(inputs.weight, reference);
      const Gradients cpu_plain = layer_norm_backward_on(cpu_kernels(), cpu_grad_out, cpu_sum, cpu_weight, cpu_forward, Tensor());
      require_match(plain.grad_x, cpu_plain.grad_x.to(dtype), fused_tolerance(dtype), what + " grad_x without grad_sum");
      if (!is_16_bit(dtype)) {
        // The CPU kernel's own grad_sum path (float32 and float64 only).
        const Gradients cpu_fused = layer_norm_backward_on(cpu_kernels(), cpu_grad_out, cpu_sum, cpu_weight, cpu_forward,
                                                           inputs.grad_sum);
        require_match(fused.grad_x, cpu_fused.grad_x, fused_tolerance(dtype), what + " grad_x with grad_sum");
      }
      if (c.affine) {
        require_match(fused.grad_weight, cpu_plain.grad_weight.to(dtype), fused_tolerance(dtype), what + " grad_weight");
        require_match(fused.grad_bias, cpu_plain.grad_bias.to(dtype), fused_tolerance(dtype), what + " grad_bias");
      }
    }
  }
}
