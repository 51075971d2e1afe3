#include "layers/loss.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/cpu/fast_exp.h"
#include "core/cpu/strided_loop.h"
#include "core/graph.h"
#include "core/ops/elementwise.h"
#include "core/ops/factory.h"
#include "core/ops/index.h"
#include "core/ops/reduce.h"
#include "core/ops/softmax.h"
#include "core/ops/unary.h"
#include "core/ops/view.h"

namespace dtrain {

namespace {

struct Rows {
  Tensor logits;   // [rows, classes]
  Tensor targets;  // [rows], Int64
};

// Checks shapes and dtypes and folds every leading dim into rows.
Rows as_rows(const Tensor& logits, const Tensor& targets) {
  check_defined(logits, "cross_entropy", "logits");
  check_defined(targets, "cross_entropy", "targets");
  if (!is_floating(logits.dtype())) fail("cross_entropy: expected floating logits, got ", logits.dtype());
  if (!is_integral(targets.dtype())) fail("cross_entropy: expected Int64 class-id targets, got ", targets.dtype());
  Shape expected(logits.shape().begin(), logits.shape().end() - (logits.dim() > 0 ? 1 : 0));
  if (logits.dim() < 1 || targets.shape() != expected) {
    fail("cross_entropy: expected targets of shape ", expected, " for logits of shape ", logits.shape(),
         " (classes on the last dim), got targets of shape ", targets.shape());
  }
  const int64_t classes = logits.size(-1);
  return Rows{reshape(logits, {-1, classes}), reshape(targets.to(kInt64), {-1})};
}

// Raises naming the first target outside [0, classes) that is not ignore_index.
void check_targets(const Tensor& targets, int64_t classes, int64_t ignore_index) {
  Tensor host = contiguous(targets.to(Device::cpu()));
  const int64_t* ids = host.data_ptr<int64_t>();
  for (int64_t i = 0; i < host.numel(); ++i) {
    if (ids[i] != ignore_index && (ids[i] < 0 || ids[i] >= classes)) {
      fail("cross_entropy: expected targets in [0, ", classes, ") or ignore_index ", ignore_index, ", got ", ids[i],
           " at row ", i);
    }
  }
}

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
  cpu::parallel_for(rows, std::max<int64_t>(1, cpu::kParallelGrain / classes), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* row = logits + r * classes;
      const T shift = row_max(row, classes);
      T exp_sum = 0, sum = 0;
      for (int64_t c = 0; c < classes; ++c) {
        exp_sum += cpu::fast_exp(row[c] - shift);
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
  cpu::parallel_for(rows, std::max<int64_t>(1, cpu::kParallelGrain / classes), [&](int64_t begin, int64_t end) {
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
      for (int64_t c = 0; c < classes; ++c) out[c] = scale * (cpu::fast_exp(row[c] - log_normaliser) - per_class);
      out[target] -= scale * on_target;
    }
  });
}

Tensor fused_cross_entropy(const Rows& input, const Shape& target_shape, const CrossEntropyOptions& options) {
  const Tensor logits = contiguous(input.logits);
  const Tensor targets = contiguous(input.targets);
  const int64_t rows = logits.size(0), classes = logits.size(1);
  const DType dtype = logits.dtype();
  Tensor lse = empty({rows}, {.dtype = dtype});
  Tensor row_loss = empty({rows}, {.dtype = dtype});
  const int64_t* ids = targets.data_ptr<int64_t>();
  int64_t counted = 0;
  for (int64_t r = 0; r < rows; ++r) counted += ids[r] != options.ignore_index ? 1 : 0;

  auto run_forward = [&]<typename T>() {
    forward_rows<T>(logits.data_ptr<T>(), ids, lse.data_ptr<T>(), row_loss.data_ptr<T>(), rows, classes,
                    options.ignore_index, options.label_smoothing);
  };
  if (dtype == kFloat32) run_forward.operator()<float>();
  else run_forward.operator()<double>();

  Tensor out;
  double divisor = 1.0;
  if (options.reduction == Reduction::None) {
    out = row_loss.view(target_shape);
  } else {
    // Summed in row order, in double: the same loss for any thread count.
    double total = 0.0;
    for (double value : row_loss.to_vector<double>()) total += value;
    divisor = options.reduction == Reduction::Mean ? static_cast<double>(counted) : 1.0;
    out = scalar_tensor(total / divisor, dtype);  // 0 / 0 = NaN when every row is ignored, as PyTorch
  }

  if (any_requires_grad({&logits})) {
    SavedTensor saved_logits(logits), saved_targets(targets), saved_lse(lse);
    const Reduction reduction = options.reduction;
    const Shape logits_shape = logits.shape();
    record("cross_entropy", {logits}, {out}, [=](const GradientList& g) {
      const Tensor x = saved_logits.unpack("cross_entropy");
      Tensor grad = empty(logits_shape, {.dtype = x.dtype()});
      // Per-row scales for Reduction::None; one scale (g / divisor) otherwise.
      const Tensor upstream = contiguous(g[0].to(x.dtype()));
      auto run_backward = [&]<typename T>() {
        const T* row_scale = reduction == Reduction::None ? upstream.data_ptr<T>() : nullptr;
        const T uniform_scale = reduction == Reduction::None ? T(0) : static_cast<T>(upstream.item() / divisor);
        backward_rows<T>(x.data_ptr<T>(), saved_targets.unpack("cross_entropy").data_ptr<int64_t>(),
                         saved_lse.unpack("cross_entropy").data_ptr<T>(), row_scale, uniform_scale, grad.data_ptr<T>(),
                         rows, classes, options.ignore_index, options.label_smoothing);
      };
      if (x.dtype() == kFloat32) run_backward.operator()<float>();
      else run_backward.operator()<double>();
      return GradientList{grad};
    });
  }
  return out;
}

void check_smoothing(double smoothing) {
  if (!(smoothing >= 0.0 && smoothing <= 1.0)) {
    fail("cross_entropy: expected label_smoothing in [0, 1], got ", smoothing);
  }
}

}  // namespace

namespace detail {
Tensor cross_entropy_composed(const Tensor& logits, const Tensor& targets, CrossEntropyOptions options) {
  check_smoothing(options.label_smoothing);
  Rows input = as_rows(logits, targets);
  check_targets(input.targets, input.logits.size(1), options.ignore_index);
  Tensor ignored = eq(input.targets, options.ignore_index);
  Tensor safe_targets = masked_fill(input.targets, ignored, 0);  // any valid class; masked out below
  Tensor log_probs = log_softmax(input.logits, 1);
  Tensor row_loss = neg(squeeze(gather(log_probs, 1, unsqueeze(safe_targets, 1)), 1));
  if (options.label_smoothing > 0.0) {
    Tensor uniform_loss = neg(mean(log_probs, {1}));
    row_loss = add(mul(row_loss, 1.0 - options.label_smoothing), mul(uniform_loss, options.label_smoothing));
  }
  row_loss = masked_fill(row_loss, ignored, 0.0);
  switch (options.reduction) {
    case Reduction::None: return row_loss.view(targets.shape());
    case Reduction::Sum: return sum(row_loss);
    case Reduction::Mean: break;
  }
  const double counted = static_cast<double>(input.targets.numel()) - sum(ignored.to(kInt64)).item();
  return div(sum(row_loss), counted);
}
}  // namespace detail

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, CrossEntropyOptions options) {
  check_smoothing(options.label_smoothing);
  const bool fused = logits.defined() && logits.device().is_cpu() &&
                     (logits.dtype() == kFloat32 || logits.dtype() == kFloat64);
  if (!fused) return detail::cross_entropy_composed(logits, targets, options);
  Rows input = as_rows(logits, targets);
  check_targets(input.targets, input.logits.size(1), options.ignore_index);
  return fused_cross_entropy(input, targets.shape(), options);
}

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  check_defined(input, "mse_loss", "input");
  check_defined(target, "mse_loss", "target");
  if (input.shape() != target.shape()) {
    fail("mse_loss: expected input and target of one shape, got ", input.shape(), " and ", target.shape());
  }
  Tensor squared = square(sub(input, target));
  switch (reduction) {
    case Reduction::None: return squared;
    case Reduction::Sum: return sum(squared);
    case Reduction::Mean: break;
  }
  return mean(squared);
}

}  // namespace dtrain
