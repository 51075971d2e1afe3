// CpuBackend::cross_entropy and cross_entropy_backward for float32 and float64 logits (the loss
// in layers/loss.cpp calls them; 16-bit logits take its composed path on the CPU). The softmax is
// recomputed per row from the saved log-sum-exp, never stored.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "core/backend.h"
#include "core/cpu/cpu_backend.h"
#include "core/cpu/float_dispatch.h"
#include "core/cpu/fast_exp.h"
#include "core/cpu/strided_loop.h"
#include "core/error.h"

namespace dtrain::cpu {

namespace {

template <typename T>
T row_max(const T* row, int64_t classes) {
  T best = -std::numeric_limits<T>::infinity();
  for (int64_t c = 0; c < classes; ++c) best = std::max(best, row[c]);
  return best;
}

// Per row: lse = log sum exp(x), loss = lse - (1 - s) x[target] - (s / C) sum x. The loss of an
// ignored row is 0.
template <typename T>
void forward_rows(const T* logits, const int64_t* targets, T* lse, T* loss, int64_t rows, int64_t classes,
                  int64_t ignore_index, double smoothing) {
  const T on_target = static_cast<T>(1.0 - smoothing), per_class = static_cast<T>(smoothing / classes);
  parallel_for(rows, std::max<int64_t>(1, kParallelGrain / classes), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* row = logits + r * classes;
      const T shift = row_max(row, classes);
      T exp_sum = 0, sum = 0;
      for (int64_t c = 0; c < classes; ++c) {
        exp_sum += fast_exp(row[c] - shift);
        sum += row[c];
      }
      lse[r] = shift + std::log(exp_sum);
      const int64_t target = targets[r];
      loss[r] = target == ignore_index ? T(0) : lse[r] - on_target * row[target] - per_class * sum;
    }
  });
}

// grad[r, c] = scale_r * (softmax(x_r)[c] - s / C - (1 - s) [c == target_r]); 0 for ignored rows.
template <typename T>
void backward_rows(const T* logits, const int64_t* targets, const T* lse, const T* row_scale, T uniform_scale,
                   T* grad, int64_t rows, int64_t classes, int64_t ignore_index, double smoothing) {
  const T on_target = static_cast<T>(1.0 - smoothing), per_class = static_cast<T>(smoothing / classes);
  parallel_for(rows, std::max<int64_t>(1, kParallelGrain / classes), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      T* out = grad + r * classes;
      const int64_t target = targets[r];
      if (target == ignore_index) {
        std::fill(out, out + classes, T(0));
        continue;
      }
      const T scale = row_scale ? row_scale[r] : uniform_scale;
      const T* row = logits + r * classes;
      const T log_normaliser = lse[r];
      for (int64_t c = 0; c < classes; ++c) out[c] = scale * (fast_exp(row[c] - log_normaliser) - per_class);
      out[target] -= scale * on_target;
    }
  });
}


}  // namespace

void CpuBackend::cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index,
                               double label_smoothing, Tensor& lse, Tensor& loss) {
  require_kernel_support(*this, {.kernel = FusedKernel::CrossEntropy, .tensors = {logits, targets}}, "cross_entropy");
  const int64_t rows = logits.size(0), classes = logits.size(1);
  visit_float32_or_float64(logits.dtype(), "cross_entropy", [&]<typename T>() {
    forward_rows<T>(logits.data_ptr<T>(), targets.data_ptr<int64_t>(), lse.data_ptr<T>(), loss.data_ptr<T>(), rows,
                    classes, ignore_index, label_smoothing);
  });
}

void CpuBackend::cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                                        const Tensor& upstream, bool per_row, double divisor, int64_t ignore_index,
                                        double label_smoothing, Tensor& grad) {
  require_kernel_support(*this, {.kernel = FusedKernel::CrossEntropy, .tensors = {logits, targets}},
                         "cross_entropy_backward");
  const int64_t rows = logits.size(0), classes = logits.size(1);
  visit_float32_or_float64(logits.dtype(), "cross_entropy_backward", [&]<typename T>() {
    const T* row_scale = per_row ? upstream.data_ptr<T>() : nullptr;
    const T uniform_scale = per_row ? T(0) : static_cast<T>(upstream.item() / divisor);
    backward_rows<T>(logits.data_ptr<T>(), targets.data_ptr<int64_t>(), lse.data_ptr<T>(), row_scale, uniform_scale,
                     grad.data_ptr<T>(), rows, classes, ignore_index, label_smoothing);
  });
}

}  // namespace dtrain::cpu
