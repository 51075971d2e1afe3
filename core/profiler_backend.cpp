#include "core/profiler_backend.h"

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <vector>

#include "core/profiler_recorder.h"

namespace dtrain::profiler::detail {
namespace {

const char* reduction_name(ReductionKind kind) {
  switch (kind) {
    case ReductionKind::Sum: return "sum";
    case ReductionKind::Mean: return "mean";
    case ReductionKind::Max: return "max";
    case ReductionKind::Min: return "min";
  }
  return "reduce";
}

const char* random_name(RandomKind kind) {
  switch (kind) {
    case RandomKind::Uniform: return "uniform";
    case RandomKind::Normal: return "normal";
    case RandomKind::Bernoulli: return "bernoulli";
  }
  return "random";
}

// A kernel call as an op event (unless the op open around it owns it).
class KernelScope : public Scope {
 public:
  KernelScope(const char* name, std::initializer_list<const Tensor*> inputs) : Scope(KernelCall{}, name, inputs) {}
};

class ProfilingBackend final : public Backend {
 public:
  explicit ProfilingBackend(Backend& table) : table_(table) {}
  Backend& table() const { return table_; }

  void fill(Tensor& out, Scalar value) override {
    KernelScope scope("fill", {&out});
    table_.fill(out, value);
  }
  void arange(Tensor& out, double start, double step) override {
    KernelScope scope("arange", {&out});
    table_.arange(out, start, step);
  }
  void copy(const Tensor& source, Tensor& destination) override {
    KernelScope scope(source.dtype() == destination.dtype() ? "copy" : "to", {&source});
    table_.copy(source, destination);
  }
  void copy_to_host(const Tensor& source, Tensor& host_destination) override {
    KernelScope scope("copy_to_host", {&source});
    table_.copy_to_host(source, host_destination);
  }
  void copy_from_host(const Tensor& host_source, Tensor& destination) override {
    KernelScope scope("copy_from_host", {&destination, &host_source});  // the device the bytes go to
    table_.copy_from_host(host_source, destination);
  }
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) override {
    KernelScope scope(binary_op_name(op), {&a, &b});
    table_.binary(op, a, b, out);
  }
  void unary(UnaryOp op, const Tensor& a, Tensor& out, double parameter) override {
    KernelScope scope(unary_op_name(op), {&a});
    table_.unary(op, a, out, parameter);
  }
  void where(const Tensor& condition, const Tensor& a, const Tensor& b, Tensor& out) override {
    KernelScope scope("where", {&condition, &a, &b});
    table_.where(condition, a, b, out);
  }
  void reduce(ReductionKind op, const Tensor& input, const std::vector<int64_t>& dims, Tensor& out) override {
    KernelScope scope(reduction_name(op), {&input});
    table_.reduce(op, input, dims, out);
  }
  void reduce_with_index(ReductionKind op, const Tensor& input, int64_t dim, Tensor& values, Tensor& indices) override {
    KernelScope scope(op == ReductionKind::Min ? "min_with_index" : "max_with_index", {&input});
    table_.reduce_with_index(op, input, dim, values, indices);
  }
  void matmul(const Tensor& a, const Tensor& b, Tensor& out) override {
    KernelScope scope("matmul", {&a, &b});
    table_.matmul(a, b, out);
  }
  void softmax(const Tensor& input, int64_t dim, bool log, Tensor& out) override {
    KernelScope scope(log ? "log_softmax" : "softmax", {&input});
    table_.softmax(input, dim, log, out);
  }
  void softmax_backward(const Tensor& grad_output, const Tensor& output, int64_t dim, bool log,
                        Tensor& grad_input) override {
    KernelScope scope(log ? "log_softmax_backward" : "softmax_backward", {&grad_output, &output});
    table_.softmax_backward(grad_output, output, dim, log, grad_input);
  }
  void gather(const Tensor& input, int64_t dim, const Tensor& index, Tensor& out) override {
    KernelScope scope("gather", {&input, &index});
    table_.gather(input, dim, index, out);
  }
  void scatter_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& source) override {
    KernelScope scope("scatter_add", {&out, &index, &source});
    table_.scatter_add(out, dim, index, source);
  }
  void index_select(const Tensor& input, int64_t dim, const Tensor& index, Tensor& out) override {
    KernelScope scope("index_select", {&input, &index});
    table_.index_select(input, dim, index, out);
  }
  void index_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& source, IndexBounds bounds) override {
    KernelScope scope("index_add", {&out, &index, &source});
    table_.index_add(out, dim, index, source, bounds);
  }
  void causal_softmax(const Tensor& scores, Tensor& out) override {
    KernelScope scope("causal_softmax", {&scores});
    table_.causal_softmax(scores, out);
  }
  void causal_softmax_backward(const Tensor& grad_output, const Tensor& output, Tensor& grad_input) override {
    KernelScope scope("causal_softmax_backward", {&grad_output, &output});
    table_.causal_softmax_backward(grad_output, output, grad_input);
  }
  // The capability question is no kernel call: answered by the table, not recorded.
  KernelSupport supports(const KernelCase& query) override { return table_.supports(query); }
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale, Tensor& out, Tensor& lse) override {
    KernelScope scope("attention", {&q, &k, &v});
    table_.attention(q, k, v, scale, out, lse);
  }
  void attention_backward(const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                          const Tensor& lse, double scale, Tensor& grad_q, Tensor& grad_k, Tensor& grad_v) override {
    KernelScope scope("attention_backward", {&grad_out, &q, &k, &v});
    table_.attention_backward(grad_out, q, k, v, out, lse, scale, grad_q, grad_k, grad_v);
  }
  void random(RandomKind kind, RandomStream stream, double a, double b, Tensor& out) override {
    KernelScope scope(random_name(kind), {&out});
    table_.random(kind, stream, a, b, out);
  }
  void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, Tensor& out, Tensor& mean,
                  Tensor& rstd) override {
    KernelScope scope("layer_norm", {&x, &weight, &bias});
    table_.layer_norm(x, weight, bias, eps, out, mean, rstd);
  }
  void add_layer_norm(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias, double eps,
                      Tensor& sum, Tensor& out, Tensor& mean, Tensor& rstd) override {
    KernelScope scope("add_layer_norm", {&x, &residual, &weight, &bias});
    table_.add_layer_norm(x, residual, weight, bias, eps, sum, out, mean, rstd);
  }
  void layer_norm_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight, const Tensor& mean,
                           const Tensor& rstd, const Tensor& grad_sum, Tensor& grad_x, Tensor& grad_weight,
                           Tensor& grad_bias) override {
    KernelScope scope("layer_norm_backward", {&grad_out, &x, &weight, &grad_sum});
    table_.layer_norm_backward(grad_out, x, weight, mean, rstd, grad_sum, grad_x, grad_weight, grad_bias);
  }
  void cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index, double label_smoothing,
                     Tensor& lse, Tensor& loss) override {
    KernelScope scope("cross_entropy", {&logits, &targets});
    table_.cross_entropy(logits, targets, ignore_index, label_smoothing, lse, loss);
  }
  void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse, const Tensor& upstream,
                              bool per_row, double divisor, int64_t ignore_index, double label_smoothing,
                              Tensor& grad) override {
    KernelScope scope("cross_entropy_backward", {&logits, &targets, &upstream});
    table_.cross_entropy_backward(logits, targets, lse, upstream, per_row, divisor, ignore_index, label_smoothing, grad);
  }
  void adam_update(const std::vector<AdamTensors>& parameters, const AdamStepScalars& scalars) override {
    // The first parameter stands for the group (the table shows one row per call, not per tensor).
    const Tensor* first = parameters.empty() ? nullptr : &parameters.front().param;
    KernelScope scope("adam_update", {first});
    table_.adam_update(parameters, scalars);
  }
  void linear(const Tensor& rows, const Tensor& weight, const Tensor& bias, LinearActivation activation, Tensor& out,
              Tensor& pre_activation) override {
    KernelScope scope(activation == LinearActivation::GeluTanh ? "linear_gelu" : "linear", {&rows, &weight, &bias});
    table_.linear(rows, weight, bias, activation, out, pre_activation);
  }
  void linear_backward(const Tensor& grad_out, const Tensor& rows, const Tensor& weight, const Tensor& pre_activation,
                       LinearActivation activation, Tensor& grad_rows, Tensor& grad_weight, Tensor& grad_bias) override {
    KernelScope scope(activation == LinearActivation::GeluTanh ? "linear_gelu_backward" : "linear_backward",
                      {&grad_out, &rows, &weight});
    table_.linear_backward(grad_out, rows, weight, pre_activation, activation, grad_rows, grad_weight, grad_bias);
  }
  void linear_input_gradient(const Tensor& grad_out, const Tensor& weight, const Tensor& pre_activation,
                             LinearActivation activation, Tensor& grad_pre, Tensor& grad_pre_sums) override {
    KernelScope scope(activation == LinearActivation::GeluTanh ? "linear_input_gradient_gelu" : "linear_input_gradient",
                      {&grad_out, &weight, &pre_activation});
    table_.linear_input_gradient(grad_out, weight, pre_activation, activation, grad_pre, grad_pre_sums);
  }
  void convolution2d(const Tensor& x, const Tensor& weight, Convolution2d geometry, Tensor& out) override {
    KernelScope scope("convolution2d", {&x, &weight});
    table_.convolution2d(x, weight, geometry, out);
  }
  void convolution2d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight, Convolution2d geometry,
                              Tensor& grad_x, Tensor& grad_weight) override {
    KernelScope scope("convolution2d_backward", {&grad_out, &x, &weight});
    table_.convolution2d_backward(grad_out, x, weight, geometry, grad_x, grad_weight);
  }

 private:
  Backend& table_;
};

}  // namespace

Backend& profiling_backend(Backend& table) {
  // A handful of tables exist (one per device type); the last one asked for is cached per thread.
  thread_local Backend* last_table = nullptr;
  thread_local Backend* last_wrapper = nullptr;
  if (&table == last_table) return *last_wrapper;
  static std::mutex mutex;
  static auto* wrappers = new std::vector<std::unique_ptr<ProfilingBackend>>();  // never destroyed
  std::lock_guard lock(mutex);
  ProfilingBackend* found = nullptr;
  for (const auto& wrapper : *wrappers) {
    if (&wrapper->table() == &table) found = wrapper.get();
  }
  if (found == nullptr) {
    wrappers->push_back(std::make_unique<ProfilingBackend>(table));
    found = wrappers->back().get();
  }
  last_table = &table;
  last_wrapper = found;
  return *found;
}

}  // namespace dtrain::profiler::detail
