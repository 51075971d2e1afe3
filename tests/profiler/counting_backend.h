#pragma once
// A kernel table that counts its calls by op name and hands each to the real table: an account
// of what ran that is kept apart from the profiler, to compare its events with. Not thread-safe:
// for single-threaded tests.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/backend.h"

namespace dtrain::profiler::test {

class CountingBackend final : public Backend {
 public:
  explicit CountingBackend(Backend& table) : table_(table) {}
  const std::map<std::string, int64_t>& calls() const { return calls_; }

  void fill(Tensor& out, Scalar value) override { Call call(*this, "fill"); table_.fill(out, value); }
  void arange(Tensor& out, double start, double step) override { Call call(*this, "arange"); table_.arange(out, start, step); }
  void copy(const Tensor& source, Tensor& destination) override {
    Call call(*this, source.dtype() == destination.dtype() ? "copy" : "to");
    table_.copy(source, destination);
  }
  void copy_to_host(const Tensor& source, Tensor& host) override { Call call(*this, "copy_to_host"); table_.copy_to_host(source, host); }
  void copy_from_host(const Tensor& host, Tensor& destination) override {
    Call call(*this, "copy_from_host");
    table_.copy_from_host(host, destination);
  }
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) override {
    Call call(*this, binary_op_name(op));
    table_.binary(op, a, b, out);
  }
  void unary(UnaryOp op, const Tensor& a, Tensor& out, double parameter) override {
    Call call(*this, unary_op_name(op));
    table_.unary(op, a, out, parameter);
  }
  void where(const Tensor& condition, const Tensor& a, const Tensor& b, Tensor& out) override {
    Call call(*this, "where");
    table_.where(condition, a, b, out);
  }
  void reduce(ReductionKind op, const Tensor& input, const std::vector<int64_t>& dims, Tensor& out) override {
    static const char* const kNames[] = {"sum", "mean", "max", "min"};
    Call call(*this, kNames[static_cast<int>(op)]);
    table_.reduce(op, input, dims, out);
  }
  void reduce_with_index(ReductionKind op, const Tensor& input, int64_t dim, Tensor& values, Tensor& indices) override {
    Call call(*this, op == ReductionKind::Min ? "min_with_index" : "max_with_index");
    table_.reduce_with_index(op, input, dim, values, indices);
  }
  void matmul(const Tensor& a, const Tensor& b, Tensor& out) override { Call call(*this, "matmul"); table_.matmul(a, b, out); }
  void softmax(const Tensor& input, int64_t dim, bool log, Tensor& out) override {
    Call call(*this, log ? "log_softmax" : "softmax");
    table_.softmax(input, dim, log, out);
  }
  void softmax_backward(const Tensor& grad_output, const Tensor& output, int64_t dim, bool log,
                        Tensor& grad_input) override {
    Call call(*this, log ? "log_softmax_backward" : "softmax_backward");
    table_.softmax_backward(grad_output, output, dim, log, grad_input);
  }
  void gather(const Tensor& input, int64_t dim, const Tensor& index, Tensor& out) override {
    Call call(*this, "gather");
    table_.gather(input, dim, index, out);
  }
  void scatter_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& source) override {
    Call call(*this, "scatter_add");
    table_.scatter_add(out, dim, index, source);
  }
  void index_select(const Tensor& input, int64_t dim, const Tensor& index, Tensor& out) override {
    Call call(*this, "index_select");
    table_.index_select(input, dim, index, out);
  }
  void index_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& source, IndexBounds bounds) override {
    Call call(*this, "index_add");
    table_.index_add(out, dim, index, source, bounds);
  }
  void causal_softmax(const Tensor& scores, Tensor& out) override {
    Call call(*this, "causal_softmax");
    table_.causal_softmax(scores, out);
  }
  void causal_softmax_backward(const Tensor& grad_output, const Tensor& output, Tensor& grad_input) override {
    Call call(*this, "causal_softmax_backward");
    table_.causal_softmax_backward(grad_output, output, grad_input);
  }
  // The capability question is no kernel call: not counted.
  KernelSupport supports(const KernelCase& query) override { return table_.supports(query); }
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale, Tensor& out, Tensor& lse) override {
    Call call(*this, "attention");
    table_.attention(q, k, v, scale, out, lse);
  }
  void attention_backward(const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                          const Tensor& lse, double scale, Tensor& grad_q, Tensor& grad_k, Tensor& grad_v) override {
    Call call(*this, "attention_backward");
    table_.attention_backward(grad_out, q, k, v, out, lse, scale, grad_q, grad_k, grad_v);
  }
  void random(RandomKind kind, RandomStream stream, double a, double b, Tensor& out) override {
    static const char* const kNames[] = {"uniform", "normal", "bernoulli"};
    Call call(*this, kNames[static_cast<int>(kind)]);
    table_.random(kind, stream, a, b, out);
  }
  void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, Tensor& out, Tensor& mean,
                  Tensor& rstd) override {
    Call call(*this, "layer_norm");
    table_.layer_norm(x, weight, bias, eps, out, mean, rstd);
  }
  void add_layer_norm(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias, double eps,
                      Tensor& sum, Tensor& out, Tensor& mean, Tensor& rstd) override {
    Call call(*this, "add_layer_norm");
    table_.add_layer_norm(x, residual, weight, bias, eps, sum, out, mean, rstd);
  }
  void layer_norm_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight, const Tensor& mean,
                           const Tensor& rstd, const Tensor& grad_sum, Tensor& grad_x, Tensor& grad_weight,
                           Tensor& grad_bias) override {
    Call call(*this, "layer_norm_backward");
    table_.layer_norm_backward(grad_out, x, weight, mean, rstd, grad_sum, grad_x, grad_weight, grad_bias);
  }
  void cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index, double label_smoothing,
                     Tensor& lse, Tensor& loss) override {
    Call call(*this, "cross_entropy");
    table_.cross_entropy(logits, targets, ignore_index, label_smoothing, lse, loss);
  }
  void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse, const Tensor& upstream,
                              bool per_row, double divisor, int64_t ignore_index, double label_smoothing,
                              Tensor& grad) override {
    Call call(*this, "cross_entropy_backward");
    table_.cross_entropy_backward(logits, targets, lse, upstream, per_row, divisor, ignore_index, label_smoothing, grad);
  }
  void adam_update(const std::vector<AdamTensors>& parameters, const AdamStepScalars& scalars) override {
    Call call(*this, "adam_update");
    table_.adam_update(parameters, scalars);
  }
  void linear(const Tensor& rows, const Tensor& weight, const Tensor& bias, LinearActivation activation, Tensor& out,
              Tensor& pre_activation) override {
    Call call(*this, activation == LinearActivation::GeluTanh ? "linear_gelu" : "linear");
    table_.linear(rows, weight, bias, activation, out, pre_activation);
  }
  void linear_backward(const Tensor& grad_out, const Tensor& rows, const Tensor& weight, const Tensor& pre_activation,
                       LinearActivation activation, Tensor& grad_rows, Tensor& grad_weight, Tensor& grad_bias) override {
    Call call(*this, activation == LinearActivation::GeluTanh ? "linear_gelu_backward" : "linear_backward");
    table_.linear_backward(grad_out, rows, weight, pre_activation, activation, grad_rows, grad_weight, grad_bias);
  }
  void linear_input_gradient(const Tensor& grad_out, const Tensor& weight, const Tensor& pre_activation,
                             LinearActivation activation, Tensor& grad_pre, Tensor& grad_pre_sums) override {
    Call call(*this, activation == LinearActivation::GeluTanh ? "linear_input_gradient_gelu" : "linear_input_gradient");
    table_.linear_input_gradient(grad_out, weight, pre_activation, activation, grad_pre, grad_pre_sums);
  }
  void convolution2d(const Tensor& x, const Tensor& weight, Convolution2d geometry, Tensor& out) override {
    Call call(*this, "convolution2d");
    table_.convolution2d(x, weight, geometry, out);
  }
  void convolution2d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight, Convolution2d geometry,
                              Tensor& grad_x, Tensor& grad_weight) override {
    Call call(*this, "convolution2d_backward");
    table_.convolution2d_backward(grad_out, x, weight, geometry, grad_x, grad_weight);
  }

 private:
  // One call through the table. A kernel that calls the table itself (a CPU kernel composed of
  // others) makes calls that are part of it: only the outermost one counts.
  class Call {
   public:
    Call(CountingBackend& owner, const char* name) : owner_(owner), outermost_(owner.depth_++ == 0) {
      if (outermost_ && name != nullptr) ++owner_.calls_[name];
    }
    ~Call() { --owner_.depth_; }

   private:
    CountingBackend& owner_;
    bool outermost_;
  };

  Backend& table_;
  std::map<std::string, int64_t> calls_;
  int depth_ = 0;
};

// Makes table the kernel table of device type for its life, then puts original back.
class InstalledBackend {
 public:
  InstalledBackend(DeviceType type, Backend& table, Backend& original) : type_(type), original_(original) {
    register_backend(type, &table);
  }
  ~InstalledBackend() { register_backend(type_, &original_); }
  InstalledBackend(const InstalledBackend&) = delete;
  InstalledBackend& operator=(const InstalledBackend&) = delete;

 private:
  DeviceType type_;
  Backend& original_;
};

}  // namespace dtrain::profiler::test
