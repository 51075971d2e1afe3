// CudaBackend::cross_entropy and cross_entropy_backward over contiguous logits [rows, classes]:
// one block per row, the CPU's formulas (core/cpu/cross_entropy_kernels.cpp) in the compute type
// (float for the 16-bit dtypes). The forward keeps only the per-row log-sum-exp; the backward
// recomputes the softmax from it while writing the gradient, so no probability tensor exists.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "core/backend.h"
#include "cuda/cuda_backend.h"
#include "cuda/kernels/block_reduce.cuh"
#include "cuda/kernels/device_math.cuh"
#include "cuda/kernels/element.cuh"
#include "cuda/kernels/launch.cuh"

namespace dtrain::cuda {
namespace {

struct CrossEntropyRows {
  int64_t rows;
  int64_t classes;
  int64_t ignore_index;
  double on_target;  // 1 - s
  double per_class;  // s / classes
};

template <typename T>
__global__ void cross_entropy_forward_kernel(const T* logits, const int64_t* targets, compute_t<T>* lse,
                                             compute_t<T>* loss, CrossEntropyRows shape) {
  using C = compute_t<T>;
  __shared__ C shared[32];
  const C on_target = static_cast<C>(shape.on_target), per_class = static_cast<C>(shape.per_class);
  for (int64_t row = blockIdx.x; row < shape.rows; row += gridDim.x) {
    const T* x = logits + row * shape.classes;
    C best = MaxOp::identity<C>();
    for (int64_t c = threadIdx.x; c < shape.classes; c += blockDim.x) best = MaxOp::combine(best, Element<T>::load(x[c]));
    const C shift = block_all_reduce<MaxOp>(best, shared);
    C exp_sum = 0, sum = 0;
    for (int64_t c = threadIdx.x; c < shape.classes; c += blockDim.x) {
      const C value = Element<T>::load(x[c]);
      exp_sum += math::exp(value - shift);
      sum += value;
    }
    exp_sum = block_all_reduce<SumOp>(exp_sum, shared);
    sum = block_all_reduce<SumOp>(sum, shared);
    if (threadIdx.x == 0) {
      const C log_normaliser = shift + math::log(exp_sum);
      const int64_t target = targets[row];
      lse[row] = log_normaliser;
      // The caller checked every target; the bound check only keeps a broken contract in bounds.
      const bool counted = target != shape.ignore_index && target >= 0 && target < shape.classes;
      loss[row] = counted ? log_normaliser - on_target * Element<T>::load(x[target]) - per_class * sum : C(0);
    }
  }
}

template <typename T>
__global__ void cross_entropy_backward_kernel(const T* logits, const int64_t* targets, const compute_t<T>* lse,
                                              const T* upstream, bool per_row, double divisor, T* grad,
                                              CrossEntropyRows shape) {
  using C = compute_t<T>;
  const C on_target = static_cast<C>(shape.on_target), per_class = static_cast<C>(shape.per_class);
  // As the CPU: the uniform scale is upstream / divisor in double, rounded to T's compute type.
  const C uniform_scale = per_row ? C(0) : static_cast<C>(static_cast<double>(Element<T>::load(upstream[0])) / divisor);
  for (int64_t row = blockIdx.x; row < shape.rows; row += gridDim.x) {
    T* out = grad + row * shape.classes;
    const int64_t target = targets[row];
    if (target == shape.ignore_index) {
      for (int64_t c = threadIdx.x; c < shape.classes; c += blockDim.x) out[c] = Element<T>::store(C(0));
      continue;
    }
    const T* x = logits + row * shape.classes;
    const C scale = per_row ? Element<T>::load(upstream[row]) : uniform_scale;
    const C log_normaliser = lse[row];
    for (int64_t c = threadIdx.x; c < shape.classes; c += blockDim.x) {
      C value = scale * (math::exp(Element<T>::load(x[c]) - log_normaliser) - per_class);
      if (c == target) value -= scale * on_target;
      out[c] = Element<T>::store(value);
    }
  }
}

template <typename Fn>
void visit_floating_dtype(DType dtype, const char* op, Fn&& fn) {
  visit_dtype(dtype, [&]<typename T>() {
    if constexpr (std::is_floating_point_v<compute_t<T>>) fn.template operator()<T>();
    else fail("internal: the CUDA ", op, " kernel takes a floating dtype, got ", dtype);
  });
}

CrossEntropyRows rows_of(const Tensor& logits, int64_t ignore_index, double label_smoothing) {
  const int64_t classes = logits.size(1);
  return CrossEntropyRows{logits.size(0), classes, ignore_index, 1.0 - label_smoothing,
                          label_smoothing / static_cast<double>(classes)};
}

constexpr int kRowThreads = 512;  // vocabularies are wide: 50k classes is 100 elements a thread

}  // namespace

void CudaBackend::cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index,
                                double label_smoothing, Tensor& lse, Tensor& loss) {
  require_kernel_support(*this, {.kernel = FusedKernel::CrossEntropy, .tensors = {logits, targets}}, "cross_entropy");
  const CrossEntropyRows shape = rows_of(logits, ignore_index, label_smoothing);
  if (shape.rows == 0) return;
  if (targets.dtype() != kInt64) fail("internal: the CUDA cross_entropy kernel takes Int64 targets, got ", targets.dtype());
  LaunchContext context(logits.device());
  visit_floating_dtype(logits.dtype(), "cross_entropy", [&]<typename T>() {
    using C = compute_t<T>;
    const auto blocks = static_cast<unsigned int>(std::min(shape.rows, kMaxBlocks));
    cross_entropy_forward_kernel<T><<<blocks, kRowThreads, 0, context.stream>>>(
        static_cast<const T*>(logits.data()), static_cast<const int64_t*>(targets.data()), static_cast<C*>(lse.data()),
        static_cast<C*>(loss.data()), shape);
    check_launch("cross_entropy", logits.dtype());
  });
}

void CudaBackend::cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                                         const Tensor& upstream, bool per_row, double divisor, int64_t ignore_index,
                                         double label_smoothing, Tensor& grad) {
  require_kernel_support(*this, {.kernel = FusedKernel::CrossEntropy, .tensors = {logits, targets}},
                         "cross_entropy_backward");
  const CrossEntropyRows shape = rows_of(logits, ignore_index, label_smoothing);
  if (shape.rows == 0 || shape.classes == 0) return;
  if (targets.dtype() != kInt64) fail("internal: the CUDA cross_entropy kernel takes Int64 targets, got ", targets.dtype());
  LaunchContext context(logits.device());
  visit_floating_dtype(logits.dtype(), "cross_entropy_backward", [&]<typename T>() {
    using C = compute_t<T>;
    const auto blocks = static_cast<unsigned int>(std::min(shape.rows, kMaxBlocks));
    cross_entropy_backward_kernel<T><<<blocks, kRowThreads, 0, context.stream>>>(
        static_cast<const T*>(logits.data()), static_cast<const int64_t*>(targets.data()),
        static_cast<const C*>(lse.data()), static_cast<const T*>(upstream.data()), per_row, divisor,
        static_cast<T*>(grad.data()), shape);
    check_launch("cross_entropy_backward", logits.dtype());
  });
}

}  // namespace dtrain::cuda
