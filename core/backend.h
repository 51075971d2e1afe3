#pragma once
// The kernel table of one device type. Ops in core/ops check their arguments, work out shapes,
// allocate outputs and then call exactly one of these for the tensors' device: that is the one
// dispatch point. Kernels may assume their contract (shapes agree, dtypes as stated) and must
// handle any strides. The CPU table is core/cpu/; the CUDA backend registers its own.
#include <cstdint>
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

class Backend {
 public:
  virtual ~Backend() = default;

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
  virtual void index_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& source) = 0;

  // Fills a contiguous out from the Philox stream (see core/random.h for the numbering).
  virtual void random(RandomKind kind, RandomStream stream, double a, double b, Tensor& out) = 0;
};

void register_backend(DeviceType type, Backend* backend);
// The kernel table for device; raises naming the device when no backend is built for it.
Backend& backend_for(Device device);

}  // namespace dtrain
