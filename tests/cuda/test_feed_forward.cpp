// feed_forward_gelu on CUDA against the CPU: forward (fc's GEMM with the GELU_AUX_BIAS epilogue, proj's
// GEMM) and all five gradients (proj's BGRADB GEMM, the DGELU_BGRAD GEMM for fc's output and bias
// gradients, fc's two GEMMs), and the composed kernels where cuBLASLt declines (float64, a hidden
// width not a multiple of 8).
//
// Tolerances (relative, absolute): the CPU computes in float64 from the same rounded leaves.
//   float32  1e-4, 1e-4   two chained GEMMs of up to 256 terms each, summed in a different order
//   bfloat16 3e-2, 3e-2   the fused backward rounds once where the CPU's bf16 path would round
//                         twice; chained GEMMs with bf16 intermediates (two to three bf16 ulps)
//   float16  6e-3, 6e-3   the same in float16's ulp
//   float64  1e-12       the composed kernels (cuBLASLt takes no float64)
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "core/core.h"
#include "layers/feed_forward.h"
#include "tests/cuda/cuda_test_support.h"

using namespace dtrain;
using namespace dtrain::cuda_test;

namespace {

Tolerance feed_forward_tolerance(DType dtype) {
  switch (dtype) {
    case DType::Float32: return {1e-4, 1e-4};
    case DType::BFloat16: return {3e-2, 3e-2};
    case DType::Float16: return {6e-3, 6e-3};
    default: return {1e-12, 1e-12};
  }
}

struct Pair {
  Tensor cpu;
  Tensor gpu;
};

Pair leaf_pair(const Shape& shape, DType dtype, double scale, double phase) {
  const Tensor rounded = wavy(shape, kFloat64, scale, phase).to(dtype);
  return {rounded.to(reference_dtype(dtype)).detach().set_requires_grad(true),
          rounded.to(gpu()).detach().set_requires_grad(true)};
}

}  // namespace

TEST_CASE("cuda feed_forward_gelu (GELU_AUX_BIAS, BGRADB, DGELU_BGRAD) matches the CPU forward and all five gradients") {
  struct Case {
    Shape input;
    int64_t hidden;
    bool bias;
  };
  // hidden 256: every cuBLASLt epilogue applies; 20: not a multiple of 8, the GELU epilogues fall back.
  const std::vector<Case> cases{{{3, 16, 64}, 256, true}, {{40, 32}, 128, false}, {{5, 12}, 20, true}};
  for (DType dtype : floating_dtypes()) {
    for (const Case& c : cases) {
      const int64_t in_features = c.input.back(), out_features = in_features;
      const std::string what = std::string("feed_forward_gelu ") + dtype_name(dtype) + " " + std::to_string(in_features) +
                               " -> " + std::to_string(c.hidden) + (c.bias ? " with" : " without") + " biases";
      Pair x = leaf_pair(c.input, dtype, 1.0, 0.4);
      Pair fc_weight = leaf_pair({c.hidden, in_features}, dtype, 0.2, 1.7);
      Pair fc_bias = leaf_pair({c.hidden}, dtype, 0.5, 0.9);
      Pair proj_weight = leaf_pair({out_features, c.hidden}, dtype, 0.1, 2.3);
      Pair proj_bias = leaf_pair({out_features}, dtype, 0.5, 0.2);
      auto bias_of = [&](const Pair& pair, bool on_gpu) { return !c.bias ? Tensor() : on_gpu ? pair.gpu : pair.cpu; };
      Tensor cpu_out = feed_forward_gelu(x.cpu, fc_weight.cpu, bias_of(fc_bias, false), proj_weight.cpu, bias_of(proj_bias, false));
      Tensor gpu_out = feed_forward_gelu(x.gpu, fc_weight.gpu, bias_of(fc_bias, true), proj_weight.gpu, bias_of(proj_bias, true));
      const Tolerance tolerance = feed_forward_tolerance(dtype);
      require_match(gpu_out, cpu_out.to(dtype), tolerance, what + ": output");
      const Tensor upstream = wavy(cpu_out.shape(), kFloat64, 1.0, 2.5).to(dtype);
      sum(mul(cpu_out, upstream.to(reference_dtype(dtype)))).backward();
      sum(mul(gpu_out, upstream.to(gpu()))).backward();
      require_match(x.gpu.grad(), x.cpu.grad().to(dtype), tolerance, what + ": grad input");
      require_match(fc_weight.gpu.grad(), fc_weight.cpu.grad().to(dtype), tolerance, what + ": grad fc weight");
      require_match(proj_weight.gpu.grad(), proj_weight.cpu.grad().to(dtype), tolerance, what + ": grad proj weight");
      if (c.bias) {
        require_match(fc_bias.gpu.grad(), fc_bias.cpu.grad().to(dtype), tolerance, what + ": grad fc bias");
        require_match(proj_bias.gpu.grad(), proj_bias.cpu.grad().to(dtype), tolerance, what + ": grad proj bias");
      }
    }
  }
}

TEST_CASE("cuda linear_input_gradient (DGELU_BGRAD) matches the composed kernels on the GPU") {
  // The kernel-table entry alone, bfloat16 and float32, against matmul, GeluTanhBackward and reduce
  // run on the same GPU (linear_input_gradient_from_kernels): the epilogue's only difference is one
  // rounding fewer (the product before the GELU's gradient), so within the dtype's tolerance.
  for (DType dtype : {kFloat32, kBFloat16}) {
    const Tensor grad_out = wavy({64, 48}, dtype, 1.0, 0.3).to(gpu());
    const Tensor weight = wavy({48, 128}, dtype, 0.2, 1.1).to(gpu());
    const Tensor pre_activation = wavy({64, 128}, dtype, 2.0, 0.8).to(gpu());
    const TensorOptions like{.dtype = dtype, .device = gpu()};
    Tensor fused = empty({64, 128}, like), fused_sums = empty({128}, like);
    Tensor composed = empty({64, 128}, like), composed_sums = empty({128}, like);
    Backend& table = backend_for(gpu());
    table.linear_input_gradient(grad_out, weight, pre_activation, LinearActivation::GeluTanh, fused, fused_sums);
    linear_input_gradient_from_kernels(table, grad_out, weight, pre_activation, LinearActivation::GeluTanh, composed,
                                       composed_sums);
    const Tolerance tolerance = feed_forward_tolerance(dtype);
    require_match(fused, composed.to(Device::cpu()), tolerance, std::string("grad_pre ") + dtype_name(dtype));
    require_match(fused_sums, composed_sums.to(Device::cpu()), tolerance, std::string("column sums ") + dtype_name(dtype));
  }
}
