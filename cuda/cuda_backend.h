#pragma once
// The CUDA kernel table, registered with core when libdtrain_cuda.so loads. Its methods are spread
// over one file per kernel family (cuda/kernels/*.cu, cuda/matmul.cpp, cuda/host_transfer.cpp), as
// on the CPU. Every method runs on the tensors' device (a DeviceGuard) and queues its work on that
// device's current stream; only copies to the host and index checks wait for the device.
#include <cstdint>
#include <vector>

#include "core/backend.h"

namespace dtrain::cuda {

class CudaBackend final : public Backend {
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
  // cuda/kernels/index_kernels.cu: with IndexBounds::Validated, no host synchronisation.
  void index_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& source, IndexBounds bounds) override;
  void random(RandomKind kind, RandomStream stream, double a, double b, Tensor& out) override;
  // cuda/kernels/softmax_kernels.cu: the masked columns are never read.
  void causal_softmax(const Tensor& scores, Tensor& out) override;
  void causal_softmax_backward(const Tensor& grad_output, const Tensor& output, Tensor& grad_input) override;
  // cuda/kernel_support.cpp: the fused training kernels for every floating dtype; attention and
  // convolution2d where cuDNN builds their plans (attention_support, convolution_support below).
  KernelSupport supports(const KernelCase& query) override;
  // cuda/attention.cpp: cuDNN's fused flash attention (graph API) for bf16/fp16.
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale, Tensor& out, Tensor& lse) override;
  void attention_backward(const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                          const Tensor& lse, double scale, Tensor& grad_q, Tensor& grad_k, Tensor& grad_v) override;
  // Fused training kernels (cuda/kernels/layer_norm_kernels.cu, cross_entropy_kernels.cu,
  // adam_kernels.cu): every floating dtype, statistics in float32 for the 16-bit ones.
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
  void linear(const Tensor& rows, const Tensor& weight, const Tensor& bias, LinearActivation activation, Tensor& out,
              Tensor& pre_activation) override;
  void linear_backward(const Tensor& grad_out, const Tensor& rows, const Tensor& weight, const Tensor& pre_activation,
                       LinearActivation activation, Tensor& grad_rows, Tensor& grad_weight, Tensor& grad_bias) override;
  // cuda/linear_input_gradient.cpp: cuBLASLt's DGELU_BGRAD epilogue.
  void linear_input_gradient(const Tensor& grad_out, const Tensor& weight, const Tensor& pre_activation,
                             LinearActivation activation, Tensor& grad_pre, Tensor& grad_pre_sums) override;
  // cuda/convolution.cpp: cuDNN's convolution API.
  void convolution2d(const Tensor& x, const Tensor& weight, Convolution2d geometry, Tensor& out) override;
  void convolution2d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight, Convolution2d geometry,
                              Tensor& grad_x, Tensor& grad_weight) override;
};

Backend& backend();

// CudaBackend::supports for FusedKernel::Attention (cuda/attention.cpp): whether cuDNN's fused
// forward and backward plans build for q, k, v (contiguous out and grad_out); the reason is also
// kept for last_attention_decline_reason().
KernelSupport attention_support(const Tensor& q, const Tensor& k, const Tensor& v);
// CudaBackend::supports for FusedKernel::Convolution2d (cuda/convolution.cpp): whether cuDNN
// describes the problem and offers a forward, backward-data and backward-filter algorithm.
KernelSupport convolution_support(const Tensor& x, const Tensor& weight, Convolution2d geometry);

// TF32 for float32 matmuls and convolutions, behind core's cuda::set_allow_tf32 / allow_tf32.
// Named apart from those: core's definitions are exported by every program that loads this
// library, and two copies of one name once bound this library's calls to core's (an endless loop).
void set_tf32_matmul_allowed(bool allow);
bool tf32_matmul_allowed();

}  // namespace dtrain::cuda
