#pragma once
// The CPU kernel table. Its methods are spread over one .cpp per kernel family
// (binary_kernels.cpp, reduce_kernels.cpp, ...) so each translation unit stays small.
#include <cstdint>
#include <vector>

#include "core/backend.h"

namespace dtrain::cpu {

class CpuBackend final : public Backend {
 public:
  void fill(Tensor& out, Scalar value) override;
  void arange(Tensor& out, double start, double step) override;
  void copy(const Tensor& source, Tensor& destination) override;
  void copy_to_host(const Tensor& source, Tensor& host_destination) override;
  void copy_from_host(const Tensor& host_source, Tensor& destination) override;
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) override;
  void unary(UnaryOp op, const Tensor& a, Tensor& out, double parameter) override;
  void where(const Tensor& condition, const Tensor& a, const Tensor& b, Tensor& out) override;
  void reduce(ReductionKind op, const Tensor& input, const std::vector<int64_t>& dims, Tensor& out) override;
  void reduce_with_index(ReductionKind op, const Tensor& input, int64_t dim, Tensor& values, Tensor& indices) override;
  void matmul(const Tensor& a, const Tensor& b, Tensor& out) override;
  void softmax(const Tensor& input, int64_t dim, bool log, Tensor& out) override;
  void softmax_backward(const Tensor& grad_output, const Tensor& output, int64_t dim, bool log,
                        Tensor& grad_input) override;
  void gather(const Tensor& input, int64_t dim, const Tensor& index, Tensor& out) override;
  void scatter_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& source) override;
  void index_select(const Tensor& input, int64_t dim, const Tensor& index, Tensor& out) override;
  // Checks the index whatever bounds says: on the CPU the check makes nobody wait.
  void index_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& source, IndexBounds bounds) override;
  void random(RandomKind kind, RandomStream stream, double a, double b, Tensor& out) override;
  // causal_softmax_kernels.cpp: one pass each way over the visible half of each row; 16-bit
  // scores are computed in float32 and rounded once.
  void causal_softmax(const Tensor& scores, Tensor& out) override;
  void causal_softmax_backward(const Tensor& grad_output, const Tensor& output, Tensor& grad_input) override;
  // kernel_support.cpp: float32 and float64 for the fused training kernels (16-bit tensors take the
  // composed tensor-op paths on the CPU); never attention or convolution2d, whose composed paths
  // (matmul, causal_softmax and matmul; im2col and matmul) are the CPU's kernels.
  KernelSupport supports(const KernelCase& query) override;
  // Raise: supports() declines every case of these two (require_kernel_support says why).
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale, Tensor& out, Tensor& lse) override;
  void attention_backward(const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                          const Tensor& lse, double scale, Tensor& grad_q, Tensor& grad_k, Tensor& grad_v) override;
  // Fused training kernels for float32 and float64 (layer_norm_kernels.cpp, cross_entropy_kernels.cpp,
  // adam_kernels.cpp); 16-bit tensors take the composed tensor-op paths on the CPU.
  void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, Tensor& out, Tensor& mean,
                  Tensor& rstd) override;
  void add_layer_norm(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias, double eps,
                      Tensor& sum, Tensor& out, Tensor& mean, Tensor& rstd) override;
  void layer_norm_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight, const Tensor& mean,
                           const Tensor& rstd, const Tensor& grad_sum, Tensor& grad_x, Tensor& grad_weight,
                           Tensor& grad_bias) override;
  void cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index, double label_smoothing,
                     Tensor& lse, Tensor& loss) override;
  void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse, const Tensor& upstream,
                              bool per_row, double divisor, int64_t ignore_index, double label_smoothing,
                              Tensor& grad) override;
  void adam_update(const std::vector<AdamTensors>& parameters, const AdamStepScalars& scalars) override;
  // The GEMM, then the bias added in place, then the activation: the kernels layers/linear.cpp
  // ran before the entry existed, so the CPU's results did not change.
  void linear(const Tensor& rows, const Tensor& weight, const Tensor& bias, LinearActivation activation, Tensor& out,
              Tensor& pre_activation) override {
    linear_from_kernels(*this, rows, weight, bias, activation, out, pre_activation);
  }
  void linear_backward(const Tensor& grad_out, const Tensor& rows, const Tensor& weight, const Tensor& pre_activation,
                       LinearActivation activation, Tensor& grad_rows, Tensor& grad_weight, Tensor& grad_bias) override {
    linear_backward_from_kernels(*this, grad_out, rows, weight, pre_activation, activation, grad_rows, grad_weight,
                                 grad_bias);
  }
  void linear_input_gradient(const Tensor& grad_out, const Tensor& weight, const Tensor& pre_activation,
                             LinearActivation activation, Tensor& grad_pre, Tensor& grad_pre_sums) override {
    linear_input_gradient_from_kernels(*this, grad_out, weight, pre_activation, activation, grad_pre, grad_pre_sums);
  }
  // Raise, as attention: layers/conv.cpp's composed im2col path is the CPU's convolution.
  void convolution2d(const Tensor& x, const Tensor& weight, Convolution2d geometry, Tensor& out) override;
  void convolution2d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight, Convolution2d geometry,
                              Tensor& grad_x, Tensor& grad_weight) override;
};

Backend& backend();

}  // namespace dtrain::cpu
