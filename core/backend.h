#pragma once
// The kernel table of one device type. Ops in core/ops check their arguments, work out shapes,
// allocate outputs and then call exactly one of these for the tensors' device: that is the one
// dispatch point. Kernels may assume their contract (shapes agree, dtypes as stated) and must
// handle any strides. The CPU table is core/cpu/; the CUDA backend registers its own.
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dtrain {

enum class BinaryOp : uint8_t {
  Add, Sub, Mul, Div, Pow, Maximum, Minimum,
  Eq, Ne, Lt, Le, Gt, Ge,  // comparisons: out is Bool
  // Fused backward helpers: (a = forward input, b = incoming gradient) -> input gradient.
  ReluBackward, GeluTanhBackward, GeluErfBackward,
  // (a = forward output, b = incoming gradient) -> input gradient.
  TanhBackward, SigmoidBackward,
};
bool is_comparison(BinaryOp op);
const char* binary_op_name(BinaryOp op);

enum class UnaryOp : uint8_t {
  Neg, Abs, Sign, Exp, Log, Sqrt, Rsqrt, Reciprocal, Tanh, Sigmoid, Relu, GeluTanh, GeluErf, Sin, Cos,
  PowScalar,  // x ** parameter
};
const char* unary_op_name(UnaryOp op);

enum class ReductionKind : uint8_t { Sum, Mean, Max, Min };

enum class RandomKind : uint8_t { Uniform, Normal, Bernoulli };

// Philox position for one random op: the key and the first 128-bit block it may use.
struct RandomStream {
  uint64_t seed = 0;
  uint64_t offset = 0;
};

// The fused kernels of a training step (layers/layer_norm.cpp, layers/loss.cpp,
// optim/adam_update.cpp call them). Their tensors are contiguous. The per-row statistics (mean,
// rstd, log-sum-exp, row loss) have the statistics dtype: float32 for 16-bit inputs, else the
// input's (statistics_dtype below).
DType statistics_dtype(DType dtype);

// One parameter of a fused Adam(W) step. exp_avg, exp_avg_sq (and max_exp_avg_sq with amsgrad,
// master when the parameter is 16-bit and keeps a float32 master copy) are in the statistics
// dtype of param; grad has param's dtype. With a master, the update runs on the master and param
// receives its rounded value.
struct AdamTensors {
  Tensor param;
  Tensor grad;
  Tensor exp_avg;
  Tensor exp_avg_sq;
  Tensor max_exp_avg_sq;  // undefined without amsgrad
  Tensor master;          // undefined without a master copy
};

// The numbers of one Adam(W) step, computed in double once (optim/adam_update.cpp).
struct AdamStepScalars {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double step_size = 0.0;              // lr / (1 - beta1^t)
  double bias_correction2_sqrt = 1.0;  // sqrt(1 - beta2^t)
  double decay_factor = 1.0;           // 1 - lr * weight_decay
  bool l2 = false;                     // g += weight_decay * p
  bool decoupled = false;              // p *= decay_factor
};

// Whether Backend::index_add must check its index against the size of dim. Validated: the caller
// has already checked this very index for that size (index_select's backward: its forward checked
// the index it saved, and the saved tensor's version proves it unchanged since), so a device may
// skip the check whose result would make the host wait for it; an out-of-range index is still
// never read from or written to, it is skipped.
enum class IndexBounds : uint8_t { Check, Validated };

// What linear applies after the bias (Backend::linear).
enum class LinearActivation : uint8_t { None, GeluTanh };

// The geometry of a 2-d convolution with a square kernel (layers/conv.h).
struct Convolution2d {
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t dilation = 1;
};

// The fused kernels a backend may decline, each with the kernel-table entries one answer of
// Backend::supports covers and the tensors a KernelCase lists for it, in this order (an undefined
// tensor for an absent optional one). Every other entry takes every case its contract allows
// (linear, linear_backward and linear_input_gradient included: where cuBLASLt declines, the CUDA
// table composes them from its own kernels, so callers never see a decline).
enum class FusedKernel : uint8_t {
  LayerNorm,      // layer_norm and its layer_norm_backward: {x, weight, bias}
  AddLayerNorm,   // add_layer_norm and its layer_norm_backward: {x, residual, weight, bias}
  CrossEntropy,   // cross_entropy and cross_entropy_backward: {logits [rows, classes], targets [rows]}
  AdamUpdate,     // adam_update of one parameter: {param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, master}
  Attention,      // attention and attention_backward: {q, k, v} [B, H, T, D]
  Convolution2d,  // convolution2d and convolution2d_backward: {x, weight}, with the geometry
};
const char* fused_kernel_name(FusedKernel kernel);

// One question to Backend::supports: the kernel and the very tensors the caller would pass it
// (their dtypes, shapes, devices, strides and addresses are what a backend may look at).
struct KernelCase {
  FusedKernel kernel = FusedKernel::LayerNorm;
  std::vector<Tensor> tensors;
  Convolution2d geometry{};  // Convolution2d only
};

// Backend::supports's answer: taken, or declined with the reason (for messages and tests).
struct KernelSupport {
  bool supported = false;
  std::string reason;  // empty when supported
};
KernelSupport kernel_takes_case();
KernelSupport kernel_declines_case(std::string reason);

class Backend {
 public:
  virtual ~Backend() = default;

  // The one capability question of the table: whether this backend's fused kernel takes the case
  // (dtypes, shapes, devices, contiguity; on CUDA also alignment, the GPU and what cuDNN accepts).
  // Layers and optimizers ask it before calling one of the FusedKernel entries and, when declined,
  // compose the same result from primitive ops (matmul, binary, reduce, ...), which every backend
  // takes. The answer is the same for the same case and covers the backward entries too, so a
  // forward that ran never meets a declined backward. A fused entry called for a case this
  // declines raises dtrain::Error naming the entry and the reason (require_kernel_support): a
  // misuse never silently falls back or computes garbage.
  virtual KernelSupport supports(const KernelCase& query) = 0;

  // out[...] = value, any strides.
  virtual void fill(Tensor& out, Scalar value) = 0;
  // out[i] = start + i * step for a contiguous out.
  virtual void arange(Tensor& out, double start, double step) = 0;
  // dst[...] = src[...] with conversion; same shape, same device, any strides and dtypes.
  virtual void copy(const Tensor& source, Tensor& destination) = 0;
  // Copies between this device and the host; both tensors contiguous, same dtype and numel.
  virtual void copy_to_host(const Tensor& source, Tensor& host_destination) = 0;
  virtual void copy_from_host(const Tensor& host_source, Tensor& destination) = 0;

  // a, b and out have out's shape (a and b may be broadcast views with zero strides); a and b
  // share one dtype; out has it too, or Bool for comparisons.
  virtual void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) = 0;
  // out = op(a); same shape and dtype. parameter is the exponent of PowScalar.
  virtual void unary(UnaryOp op, const Tensor& a, Tensor& out, double parameter) = 0;
  // out = condition ? a : b; all of out's shape; condition Bool; a, b, out one dtype.
  virtual void where(const Tensor& condition, const Tensor& a, const Tensor& b, Tensor& out) = 0;

  // Reduces input over dims (sorted, unique); out has input's shape with those dims set to 1.
  virtual void reduce(ReductionKind op, const Tensor& input, const std::vector<int64_t>& dims, Tensor& out) = 0;
  // Max or Min over one dim with the Int64 position of the first extreme (keepdim shapes).
  virtual void reduce_with_index(ReductionKind op, const Tensor& input, int64_t dim, Tensor& values, Tensor& indices) = 0;

  // out[batch, M, N] = a[batch, M, K] @ b[batch, K, N]; a and b may be broadcast in batch.
  // out is contiguous. Floating dtypes, all three the same.
  virtual void matmul(const Tensor& a, const Tensor& b, Tensor& out) = 0;

  virtual void softmax(const Tensor& input, int64_t dim, bool log, Tensor& out) = 0;
  // grad_input from grad_output and the forward's output (softmax or log_softmax).
  virtual void softmax_backward(const Tensor& grad_output, const Tensor& output, int64_t dim, bool log,
                                Tensor& grad_input) = 0;

  // out[i][j] = input[i][index[i][j]] along dim (index Int64, out has index's shape).
  virtual void gather(const Tensor& input, int64_t dim, const Tensor& index, Tensor& out) = 0;
  // out[i][index[i][j]] += source[i][j] along dim, in place.
  virtual void scatter_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& source) = 0;
  // out = input.index_select(dim, index) with a 1-d Int64 index.
  virtual void index_select(const Tensor& input, int64_t dim, const Tensor& index, Tensor& out) = 0;
  // out.index_select(dim, index) += source, in place, summing repeated indices in index order.
  // With IndexBounds::Check an index out of range raises; with Validated it may go unnoticed.
  virtual void index_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& source, IndexBounds bounds) = 0;

  // The softmax of causal attention over contiguous scores [..., T, T]: row i of each [T, T]
  // matrix is normalised over its columns 0..i, and columns i+1.. (the future) get 0. Equal to
  // softmax(masked_fill(scores, column > row, -inf), -1). out has the scores' shape and dtype.
  virtual void causal_softmax(const Tensor& scores, Tensor& out) = 0;
  // grad_input = output * (grad_output - sum over visible columns of grad_output * output), 0 in
  // the masked columns; all three contiguous [..., T, T] of one dtype.
  virtual void causal_softmax_backward(const Tensor& grad_output, const Tensor& output, Tensor& grad_input) = 0;
  // Fused causal scaled-dot-product attention (flash attention): out = causal_softmax(q k^T * scale) v
  // for q, k, v [B, H, T, D] of one dtype whose last dim is contiguous (other strides free: q, k
  // and v may be slices of one [B, T, 3, H, D] tensor); out [B, H, T, D] contiguous; lse [B, H, T]
  // float32 receives each row's log-sum-exp of the scaled scores (natural log) for the backward.
  // Only for a case supports(FusedKernel::Attention) takes (never on the CPU; on CUDA where cuDNN's
  // SDPA takes the dtype, head size and GPU): elsewhere the caller composes matmul,
  // causal_softmax and matmul, the plain path that is always available.
  virtual void attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale, Tensor& out,
                         Tensor& lse) = 0;
  // The gradients of attention, given its out and lse: grad_q, grad_k, grad_v [B, H, T, D]
  // contiguous. Raises where the forward would have.
  virtual void attention_backward(const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v,
                                  const Tensor& out, const Tensor& lse, double scale, Tensor& grad_q, Tensor& grad_k,
                                  Tensor& grad_v) = 0;

  // Fills a contiguous out from the Philox stream (see core/random.h for the numbering).
  virtual void random(RandomKind kind, RandomStream stream, double a, double b, Tensor& out) = 0;

  // LayerNorm of each row of x [rows, size]: out = (x - mean) * rstd (* weight) (+ bias), with
  // mean and rstd [rows] saved for the backward. weight and bias [size] may be undefined.
  virtual void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, Tensor& out,
                          Tensor& mean, Tensor& rstd) = 0;
  // The residual add of a pre-norm transformer block fused into the LayerNorm that follows it:
  // sum = x + residual (rounded to the dtype, as add() rounds), then layer_norm of sum exactly as
  // above. x, residual, sum and out are [rows, size] of one dtype.
  virtual void add_layer_norm(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias,
                              double eps, Tensor& sum, Tensor& out, Tensor& mean, Tensor& rstd) = 0;
  // The gradients of layer_norm; grad_x, grad_weight and grad_bias are written where defined.
  // grad_weight and grad_bias sum over rows in a fixed order (reproducible). grad_sum, when
  // defined ([rows, size], x's dtype), is added into grad_x in the same pass: the gradient that
  // reaches add_layer_norm's sum output directly (the residual path), so that its backward is one
  // kernel, not a layer_norm_backward and an add. It is added after grad_x is rounded to the dtype,
  // as the separate add would.
  virtual void layer_norm_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight, const Tensor& mean,
                                   const Tensor& rstd, const Tensor& grad_sum, Tensor& grad_x, Tensor& grad_weight,
                                   Tensor& grad_bias) = 0;
  // Per row of logits [rows, classes] with Int64 targets [rows] (checked by the caller): lse =
  // log sum exp(x), loss = lse - (1 - s) x[target] - (s / classes) sum x; 0 for ignored rows.
  virtual void cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index, double label_smoothing,
                             Tensor& lse, Tensor& loss) = 0;
  // grad [rows, classes] = scale_r * (softmax(x_r) - s / classes - (1 - s) [c == target_r]), 0 for
  // ignored rows; scale_r = upstream[r] when per_row, else upstream[0] / divisor (in double).
  // upstream has the logits' dtype. The probabilities are never stored.
  virtual void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                                      const Tensor& upstream, bool per_row, double divisor, int64_t ignore_index,
                                      double label_smoothing, Tensor& grad) = 0;
  // One Adam(W) step over many parameters at once (formulas in optim/adam_update.h).
  virtual void adam_update(const std::vector<AdamTensors>& parameters, const AdamStepScalars& scalars) = 0;
  // out [M, N] = activation(rows [M, K] @ weight [N, K]^T + bias [N]); bias may be undefined.
  // With an activation, pre_activation [M, N] receives the value before it (for the backward);
  // without, pre_activation is undefined. out and pre_activation are contiguous; rows and weight
  // any strides. The CPU runs matmul, then add, then the activation; CUDA fuses the bias and the
  // activation into the GEMM's epilogue (cuBLASLt) where the shapes allow.
  virtual void linear(const Tensor& rows, const Tensor& weight, const Tensor& bias, LinearActivation activation,
                      Tensor& out, Tensor& pre_activation) = 0;
  // The gradients of linear from grad_out [M, N]: grad_pre = grad_out, or with GeluTanh the GELU's
  // gradient at pre_activation (as linear saved it) times grad_out; then grad_rows [M, K] =
  // grad_pre @ weight, grad_weight [N, K] = grad_pre^T @ rows and grad_bias [N] = the column sums of
  // grad_pre, each written where defined (contiguous; grad_out and pre_activation contiguous, rows
  // and weight any strides). The CPU runs those kernels in that order (linear_backward_from_kernels,
  // the results linear's node always had); CUDA sums grad_bias inside the weight-gradient GEMM
  // (cuBLASLt's BGRADB epilogue) where cuBLASLt takes the case.
  virtual void linear_backward(const Tensor& grad_out, const Tensor& rows, const Tensor& weight,
                               const Tensor& pre_activation, LinearActivation activation, Tensor& grad_rows,
                               Tensor& grad_weight, Tensor& grad_bias) = 0;
  // The input gradient of a linear layer whose rows came out of an activation (an MLP's proj after
  // fc's GELU), taken back through that activation: grad_pre [M, K] = the activation's gradient at
  // pre_activation [M, K] times grad_out [M, N] @ weight [N, K], and grad_pre_sums [K] = the column
  // sums of grad_pre (the bias gradient of the layer that made pre_activation) where defined.
  // grad_out and pre_activation contiguous, weight any strides, outputs contiguous. The CPU runs
  // matmul, the activation's backward and reduce (the kernels that two linear nodes would run, in
  // their order); CUDA runs one cuBLASLt GEMM with the DGELU_BGRAD epilogue where cuBLASLt takes
  // the case (rounding once, after the GELU's gradient, not also after the product).
  virtual void linear_input_gradient(const Tensor& grad_out, const Tensor& weight, const Tensor& pre_activation,
                                     LinearActivation activation, Tensor& grad_pre, Tensor& grad_pre_sums) = 0;
  // out [N, O, OH, OW] = the cross-correlation of x [N, C, H, W] with weight [O, C, k, k] (no
  // bias); all contiguous, one floating dtype. Only for a case supports(FusedKernel::Convolution2d)
  // takes (never on the CPU; on CUDA where cuDNN offers algorithms both ways): elsewhere the
  // caller runs its composed ops (layers/conv.cpp's im2col and matmul, which is the CPU's kernel).
  virtual void convolution2d(const Tensor& x, const Tensor& weight, Convolution2d geometry, Tensor& out) = 0;
  // grad_x and grad_weight (each written where defined) from grad_out [N, O, OH, OW].
  virtual void convolution2d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight,
                                      Convolution2d geometry, Tensor& grad_x, Tensor& grad_weight) = 0;
};

// The checks every matmul kernel makes of its contract: at least 2 dims, [..., M, K] @ [..., K, N]
// -> [..., M, N], one floating dtype, a contiguous out. Raises naming the shapes or dtypes.
void check_matmul_contract(const Tensor& a, const Tensor& b, const Tensor& out);

// Backend::linear composed from a table's own matmul, add and GELU-tanh kernels: the CPU's
// linear, and CUDA's where cuBLASLt declines, so both round alike.
void linear_from_kernels(Backend& kernels, const Tensor& rows, const Tensor& weight, const Tensor& bias,
                         LinearActivation activation, Tensor& out, Tensor& pre_activation);
// Backend::linear_backward composed from a table's own binary, matmul and reduce kernels
// (core/linear_backward_kernels.cpp): the CPU's, and CUDA's where cuBLASLt declines.
void linear_backward_from_kernels(Backend& kernels, const Tensor& grad_out, const Tensor& rows, const Tensor& weight,
                                  const Tensor& pre_activation, LinearActivation activation, Tensor& grad_rows,
                                  Tensor& grad_weight, Tensor& grad_bias);
// Backend::linear_input_gradient composed from a table's own matmul, binary and reduce kernels: the
// CPU's, and CUDA's where cuBLASLt declines.
void linear_input_gradient_from_kernels(Backend& kernels, const Tensor& grad_out, const Tensor& weight,
                                        const Tensor& pre_activation, LinearActivation activation, Tensor& grad_pre,
                                        Tensor& grad_pre_sums);

// Raises dtrain::Error naming entry, the device and the reason unless backend.supports(query): the
// first thing each fused entry does, so that a call the query refused cannot run.
void require_kernel_support(Backend& backend, const KernelCase& query, const char* entry);

// Raises unless query lists as many tensors as its kernel's list above, each defined unless optional
// (weight and bias of the layer norms, max_exp_avg_sq and master): a malformed question is a bug.
void check_kernel_case_arity(const KernelCase& query);

// The answer for LayerNorm, AddLayerNorm, CrossEntropy and AdamUpdate, whose CPU and CUDA kernels
// differ only in the dtypes they take (so both tables answer alike where they agree): every tensor
// on one device of type `device`, contiguous, in memory (not offloaded), with the shapes and dtypes
// the entry's contract states; floating inputs of any dtype when takes_16_bit (CUDA), float32 and
// float64 otherwise (the CPU; its Adam still takes a 16-bit parameter that keeps a float32 master,
// the update running on the master). Raises for a case of another kernel or a wrong tensor count.
KernelSupport fused_training_kernel_support(const KernelCase& query, DeviceType device, bool takes_16_bit);

void register_backend(DeviceType type, Backend* backend);
// The kernel table for device; raises naming the device when no backend is built for it.
Backend& backend_for(Device device);

}  // namespace dtrain
