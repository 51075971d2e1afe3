// Linear's backward on CUDA: the weight-gradient GEMM with the bias gradient in its epilogue
// (cuBLASLt BGRADB) against the composed kernels on the same GPU (GELU gradient, cuBLAS GEMMs, the
// column-sum reduction), and the MLP with linear_gelu (GELU_AUX_BIAS forward, BGRADB backward)
// against the unfused proj(gelu(linear(x))) on the GPU and a float64 CPU reference.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "core/backend.h"
#include "layers/layers.h"
#include "tests/cuda/cuda_test_support.h"

using namespace dtrain;
using namespace dtrain::cuda_test;

namespace {

Backend& gpu_table() { return backend_for(gpu()); }

// Fused against composed, both on the GPU: different GEMM kernels and fp32 (epilogue) against
// double (reduction) sums, so within a rounding of the dtype; the sums run over up to 512 rows.
Tolerance fused_against_composed(DType dtype) {
  if (dtype == kFloat32) return {1e-4, 1e-3};
  if (dtype == kBFloat16) return {2e-2, 2e-2};
  return {4e-3, 4e-3};
}

// A bf16 or float32 GPU run against the float64 CPU: the 16-bit roundings of two layers add up.
Tolerance against_float64(DType dtype) {
  if (dtype == kFloat32) return {1e-4, 1e-3};
  return {5e-2, 5e-2};
}

struct LinearGradients {
  Tensor rows, weight, bias;
};

LinearGradients gradients(bool fused, const Tensor& grad_out, const Tensor& rows, const Tensor& weight,
                          const Tensor& pre_activation, LinearActivation activation) {
  const TensorOptions like{.dtype = grad_out.dtype(), .device = gpu()};
  LinearGradients result{empty({rows.size(0), rows.size(1)}, like), empty(weight.shape(), like),
                         empty({weight.size(0)}, like)};
  if (fused) {
    gpu_table().linear_backward(grad_out, rows, weight, pre_activation, activation, result.rows, result.weight, result.bias);
  } else {
    linear_backward_from_kernels(gpu_table(), grad_out, rows, weight, pre_activation, activation, result.rows, result.weight,
                                 result.bias);
  }
  return result;
}

}  // namespace

TEST_CASE("cuda linear_backward: the bias gradient in the weight-gradient GEMM matches the composed kernels") {
  struct Case {
    int64_t m, k, n;
  };
  // GPT-2's MLP widths at 512 rows, and a shape whose GELU leading dim (40) is a multiple of 8.
  const std::vector<Case> cases{{512, 768, 3072}, {512, 3072, 768}, {96, 24, 40}};
  for (DType dtype : {kFloat32, kBFloat16, kFloat16}) {
    for (const Case& c : cases) {
      for (LinearActivation activation : {LinearActivation::None, LinearActivation::GeluTanh}) {
        const bool gelu = activation == LinearActivation::GeluTanh;
        const std::string what = std::string(dtype_name(dtype)) + " " + std::to_string(c.m) + "x" + std::to_string(c.k) +
                                 " -> " + std::to_string(c.n) + (gelu ? " gelu" : "");
        const Tensor rows = wavy({c.m, c.k}, dtype, 1.0, 0.2).to(gpu());
        const Tensor weight = wavy({c.n, c.k}, dtype, 0.1, 0.7).to(gpu());
        const Tensor grad_out = wavy({c.m, c.n}, dtype, 1.0, 1.1).to(gpu());
        const Tensor pre = gelu ? wavy({c.m, c.n}, dtype, 3.0, 0.5).to(gpu()) : Tensor();
        const LinearGradients fused = gradients(true, grad_out, rows, weight, pre, activation);
        const LinearGradients composed = gradients(false, grad_out, rows, weight, pre, activation);
        // grad_rows is the same cuBLAS GEMM of the same grad_pre on both paths: equal bits.
        require_match(fused.rows, composed.rows.to(Device::cpu()), Tolerance{0.0, 0.0}, what + " grad rows");
        require_match(fused.weight, composed.weight.to(Device::cpu()), fused_against_composed(dtype), what + " grad weight");
        require_match(fused.bias, composed.bias.to(Device::cpu()), fused_against_composed(dtype), what + " grad bias");
        // And the bias gradient is the column sum (float64 on the CPU from the same grad_pre).
        Tensor grad_pre = grad_out.to(Device::cpu()).to(kFloat64);
        if (gelu) {
          grad_pre = empty({c.m, c.n}, {.dtype = kFloat64});
          backend_for(Device::cpu()).binary(BinaryOp::GeluTanhBackward, pre.to(Device::cpu()).to(kFloat64),
                                            grad_out.to(Device::cpu()).to(kFloat64), grad_pre);
          grad_pre = grad_pre.to(dtype).to(kFloat64);  // the GPU rounds grad_pre to the dtype first
        }
        require_match(fused.bias, sum(grad_pre, {0}).to(dtype), fused_against_composed(dtype), what + " grad bias (float64)");
      }
    }
  }
}

TEST_CASE("cuda linear_backward: repeated calls give the same bits (plans cached per shape)") {
  const Tensor rows = wavy({256, 768}, kBFloat16, 1.0, 0.2).to(gpu());
  const Tensor weight = wavy({3072, 768}, kBFloat16, 0.1, 0.7).to(gpu());
  const Tensor grad_out = wavy({256, 3072}, kBFloat16, 1.0, 1.1).to(gpu());
  const Tensor pre = wavy({256, 3072}, kBFloat16, 3.0, 0.5).to(gpu());
  const LinearGradients first = gradients(true, grad_out, rows, weight, pre, LinearActivation::GeluTanh);
  const LinearGradients second = gradients(true, grad_out, rows, weight, pre, LinearActivation::GeluTanh);
  require_match(second.weight, first.weight.to(Device::cpu()), Tolerance{0.0, 0.0}, "grad weight twice");
  require_match(second.bias, first.bias.to(Device::cpu()), Tolerance{0.0, 0.0}, "grad bias twice");
}

TEST_CASE("cuda MLP with linear_gelu (fused epilogues) matches the unfused path and the float64 CPU") {
  for (DType dtype : {kFloat32, kBFloat16}) {
    const std::string what = std::string("MLP ") + dtype_name(dtype);
    manual_seed(5);
    MLP mlp(64, 256, GeluApproximation::Tanh);
    MLP reference(64, 256, GeluApproximation::Tanh);  // float64 on the CPU, the same values
    reference.load_state_dict(mlp.state_dict());
    reference.to(kFloat64);
    mlp.to(dtype);
    mlp.to(gpu());
    // The unfused path on the GPU, on copies of the same parameters.
    auto copy = [](const Tensor& t) { return t.detach().clone().set_requires_grad(); };
    Tensor fc_w = copy(mlp.fc()->weight()), fc_b = copy(mlp.fc()->bias());
    Tensor proj_w = copy(mlp.proj()->weight()), proj_b = copy(mlp.proj()->bias());

    const Tensor input = wavy({4, 32, 64}, dtype, 1.0, 0.3);
    Tensor x_fused = input.to(gpu()).set_requires_grad(), x_unfused = input.to(gpu()).set_requires_grad();
    Tensor x_reference = input.to(kFloat64).set_requires_grad();
    Tensor fused = mlp(x_fused);
    Tensor unfused = linear(gelu(linear(x_unfused, fc_w, fc_b), GeluApproximation::Tanh), proj_w, proj_b);
    Tensor expected = reference(x_reference);
    const Tolerance tolerance = fused_against_composed(dtype);
    require_match(fused, unfused.to(Device::cpu()), tolerance, what + " output, fused vs unfused");
    require_match(fused, expected.to(dtype), against_float64(dtype), what + " output, fused vs float64");

    const Tensor upstream = wavy(fused.shape(), kFloat64, 1.0, 2.1);
    sum(mul(fused, upstream.to(dtype).to(gpu()))).backward();
    sum(mul(unfused, upstream.to(dtype).to(gpu()))).backward();
    sum(mul(expected, upstream.to(dtype).to(kFloat64))).backward();
    require_match(x_fused.grad(), x_unfused.grad().to(Device::cpu()), tolerance, what + " d input, fused vs unfused");
    require_match(mlp.fc()->weight().grad(), fc_w.grad().to(Device::cpu()), tolerance, what + " d fc weight");
    require_match(mlp.fc()->bias().grad(), fc_b.grad().to(Device::cpu()), tolerance, what + " d fc bias");
    require_match(mlp.proj()->weight().grad(), proj_w.grad().to(Device::cpu()), tolerance, what + " d proj weight");
    require_match(mlp.proj()->bias().grad(), proj_b.grad().to(Device::cpu()), tolerance, what + " d proj bias");
    require_match(mlp.fc()->bias().grad(), reference.fc()->bias().grad().to(dtype), against_float64(dtype),
                  what + " d fc bias vs float64");
    require_match(mlp.proj()->bias().grad(), reference.proj()->bias().grad().to(dtype), against_float64(dtype),
                  what + " d proj bias vs float64");
  }
}
