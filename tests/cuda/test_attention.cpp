// The fused attention kernels (core/backend.h: attention, attention_backward; cuda/attention.cpp,
// cuDNN's flash attention) against an independent reference: causal attention computed on the CPU
// in float64 with dtrain's plain ops (matmul, masked_fill, softmax) from the same 16-bit inputs,
// and its gradients from the textbook formulas. On a GPU of compute capability 8.0 or newer the
// fused path must be taken for these cases: a decline fails the test and prints cuDNN's reason.
#include <catch2/catch.hpp>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "cuda/attention.h"
#include "tests/cuda/cuda_test_support.h"

using namespace dtrain;
using namespace dtrain::cuda_test;

namespace {

struct Reference {
  Tensor out, lse, grad_q, grad_k, grad_v;
};

// q, k, v, grad_out: CPU float64 [B, H, T, D].
Reference reference_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& grad_out, double scale) {
  const int64_t tokens = q.size(2);
  const Tensor scores = matmul(q, k.transpose(2, 3)) * scale;
  const Tensor positions = arange(tokens);
  const Tensor future = gt(positions.view({1, tokens}), positions.view({tokens, 1}));  // column > row
  const Tensor masked = masked_fill(scores, future, -std::numeric_limits<double>::infinity());
  const Tensor p = softmax(masked, 3);
  Reference r;
  r.out = matmul(p, v);
  r.lse = log(sum(exp(masked), {3}));  // exp(-inf) = 0: the visible columns only
  // dV = P^T dO, dP = dO V^T, dS = P * (dP - rowsum(dO * O)), dQ = dS K * scale, dK = dS^T Q * scale.
  r.grad_v = matmul(p.transpose(2, 3), grad_out);
  const Tensor grad_p = matmul(grad_out, v.transpose(2, 3));
  const Tensor row_dot = sum(grad_out * r.out, {3}, true);
  const Tensor grad_s = p * (grad_p - row_dot);
  r.grad_q = matmul(grad_s, k) * scale;
  r.grad_k = matmul(grad_s.transpose(2, 3), q) * scale;
  return r;
}

// Tolerances for 16-bit attention against the float64 reference. The inputs are the same values,
// so only the kernels' rounding separates the two: cuDNN multiplies in float32 but rounds P (and in
// the backward dS) to the input dtype before the second matmuls, and rounds every result to it.
// Each rounding is at most half an ulp, 2^-9 relative for bfloat16 (2^-12 for float16), of terms
// whose sum of magnitudes is at most a few times the result's largest value. So the bound is
// relative 2e-2 plus absolute 2e-2 of the largest reference value: about ten bfloat16 ulps. A
// wrong mask, scale, transpose or stats convention moves values by their own size, far beyond.
// lse stays float32 throughout (float32 scores of exact 16-bit inputs), so it is held to 1e-3.
void require_close(const Tensor& gpu_result, const Tensor& reference, double tolerance, const std::string& what) {
  const std::vector<double> values = reference.to_vector<double>();
  double largest = 0.0;
  for (double value : values) largest = std::max(largest, std::fabs(value));
  require_match(gpu_result.to(kFloat64), reference, {tolerance, tolerance * largest}, what);
}

int compute_capability_major() {
  int major = 0;
  REQUIRE(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) == cudaSuccess);
  return major;
}

// Runs the fused forward and backward on q, k, v (GPU, any strides) and checks them against the
// reference computed from q64, k64, v64 (the same values, CPU float64, contiguous).
void check_against_reference(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& q64, const Tensor& k64,
                             const Tensor& v64, const std::string& what) {
  INFO(what);
  const int64_t batch = q.size(0), heads = q.size(1), tokens = q.size(2), head_size = q.size(3);
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_size));
  Backend& gpu_table = backend_for(gpu());
  Tensor out = empty(q.shape(), {.dtype = q.dtype(), .device = gpu()});
  Tensor lse = empty({batch, heads, tokens}, {.dtype = kFloat32, .device = gpu()});
  if (!gpu_table.supports({.kernel = FusedKernel::Attention, .tensors = {q, k, v}}).supported) {
    if (compute_capability_major() < 8) {
      WARN("no fused attention before compute capability 8.0: " << cuda::last_attention_decline_reason());
      return;
    }
    FAIL("the fused attention declined: " << cuda::last_attention_decline_reason());
  }
  gpu_table.attention(q, k, v, scale, out, lse);

  const Tensor grad_out16 = wavy(q.shape(), kFloat64, 1.0, 0.9).to(q.dtype());
  const Reference r = reference_attention(q64, k64, v64, grad_out16.to(kFloat64), scale);
  const double tolerance = 2e-2;
  require_close(out, r.out, tolerance, what + ": out");
  require_close(lse, r.lse, 1e-3, what + ": lse (natural log-sum-exp of the scaled scores)");

  // A second run takes the cached plan and must give the same bits.
  Tensor out_again = empty(q.shape(), {.dtype = q.dtype(), .device = gpu()});
  Tensor lse_again = empty({batch, heads, tokens}, {.dtype = kFloat32, .device = gpu()});
  gpu_table.attention(q, k, v, scale, out_again, lse_again);
  REQUIRE(equal(out_again.to(Device::cpu()), out.to(Device::cpu())));
  REQUIRE(equal(lse_again.to(Device::cpu()), lse.to(Device::cpu())));

  Tensor grad_q = empty(q.shape(), {.dtype = q.dtype(), .device = gpu()});
  Tensor grad_k = empty(q.shape(), {.dtype = q.dtype(), .device = gpu()});
  Tensor grad_v = empty(q.shape(), {.dtype = q.dtype(), .device = gpu()});
  gpu_table.attention_backward(grad_out16.to(gpu()), q, k, v, out, lse, scale, grad_q, grad_k, grad_v);
  require_close(grad_q, r.grad_q, tolerance, what + ": grad_q");
  require_close(grad_k, r.grad_k, tolerance, what + ": grad_k");
  require_close(grad_v, r.grad_v, tolerance, what + ": grad_v");
}

}  // namespace

TEST_CASE("cuda attention: the fused kernels match a float64 reference for contiguous bfloat16 q, k, v") {
  const Shape shape{2, 3, 128, 64};
  const Tensor q16 = wavy(shape, kFloat64, 1.0, 0.1).to(kBFloat16);
  const Tensor k16 = wavy(shape, kFloat64, 1.0, 1.7).to(kBFloat16);
  const Tensor v16 = wavy(shape, kFloat64, 1.0, 2.9).to(kBFloat16);
  check_against_reference(q16.to(gpu()), k16.to(gpu()), v16.to(gpu()), q16.to(kFloat64), k16.to(kFloat64),
                          v16.to(kFloat64), "bfloat16 [2, 3, 128, 64]");
}

TEST_CASE("cuda attention: q, k and v sliced from one packed qkv tensor with T = 100 match the reference in bfloat16 and float16") {
  const int64_t batch = 2, tokens = 100, heads = 4;
  for (DType dtype : {kBFloat16, kFloat16}) {
    for (int64_t head_size : {int64_t{64}, int64_t{32}}) {
      const Tensor qkv16 = wavy({batch, tokens, 3, heads, head_size}, kFloat64, 1.0, 0.4).to(dtype);
      const Tensor qkv_gpu = qkv16.to(gpu());
      const Tensor qkv64 = qkv16.to(kFloat64);
      // [B, T, H, D] slices seen as [B, H, T, D]: strides (T*3*H*D, D, 3*H*D, 1).
      auto head_major = [](const Tensor& qkv, int64_t which) { return qkv.select(2, which).permute({0, 2, 1, 3}); };
      const Tensor q = head_major(qkv_gpu, 0), k = head_major(qkv_gpu, 1), v = head_major(qkv_gpu, 2);
      REQUIRE(q.stride(2) == 3 * heads * head_size);
      REQUIRE_FALSE(q.is_contiguous());
      check_against_reference(q, k, v, head_major(qkv64, 0).contiguous(), head_major(qkv64, 1).contiguous(),
                              head_major(qkv64, 2).contiguous(),
                              std::string(dtype_name(dtype)) + " strided, T 100, D " + std::to_string(head_size));
    }
  }
}

TEST_CASE("cuda attention: the query declines float32 inputs, a head size not a multiple of 8 and a single token with a reason, and the entries then raise") {
  Backend& gpu_table = backend_for(gpu());
  auto declines = [&](const Shape& shape, DType dtype, const std::string& expected_words) {
    const Tensor x = wavy(shape, kFloat64, 1.0, 0.2).to(dtype).to(gpu());
    Tensor out = empty(shape, {.dtype = dtype, .device = gpu()});
    Tensor lse = empty({shape[0], shape[1], shape[2]}, {.dtype = kFloat32, .device = gpu()});
    Tensor grad_q = empty(shape, {.dtype = dtype, .device = gpu()});
    Tensor grad_k = empty(shape, {.dtype = dtype, .device = gpu()});
    Tensor grad_v = empty(shape, {.dtype = dtype, .device = gpu()});
    INFO(shape << " " << dtype);
    const KernelSupport answer = gpu_table.supports({.kernel = FusedKernel::Attention, .tensors = {x, x, x}});
    REQUIRE_FALSE(answer.supported);
    CHECK_THAT(answer.reason, Catch::Contains(expected_words));
    CHECK_THAT(cuda::last_attention_decline_reason(), Catch::Contains(expected_words));
    // Called anyway, both entries raise naming themselves and the reason.
    REQUIRE_THROWS_WITH(gpu_table.attention(x, x, x, 0.125, out, lse),
                        Catch::Contains("attention") && Catch::Contains(expected_words));
    REQUIRE_THROWS_WITH(gpu_table.attention_backward(x, x, x, x, out, lse, 0.125, grad_q, grad_k, grad_v),
                        Catch::Contains("attention_backward") && Catch::Contains(expected_words));
  };
  declines({1, 2, 16, 64}, kFloat32, "dtype");
  declines({1, 2, 16, 12}, kBFloat16, "head size");
  declines({1, 2, 1, 64}, kBFloat16, "single token");
}
