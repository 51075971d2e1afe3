#include "layers/loss.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/backend.h"
#include "core/graph.h"
#include "core/ops/elementwise.h"
#include "core/ops/factory.h"
#include "core/ops/index.h"
#include "core/ops/reduce.h"
#include "core/ops/softmax.h"
#include "core/ops/unary.h"
#include "core/ops/view.h"
#include "core/profiler_recorder.h"

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

// Raises naming the first target outside [0, classes) that is not ignore_index; returns the
// targets on the host (contiguous Int64).
Tensor check_targets(const Tensor& targets, int64_t classes, int64_t ignore_index) {
  Tensor host = contiguous(targets.to(Device::cpu()));
  const int64_t* ids = host.data_ptr<int64_t>();
  for (int64_t i = 0; i < host.numel(); ++i) {
    if (ids[i] != ignore_index && (ids[i] < 0 || ids[i] >= classes)) {
      fail("cross_entropy: expected targets in [0, ", classes, ") or ignore_index ", ignore_index, ", got ", ids[i],
           " at row ", i);
    }
  }
  return host;
}

// The rows are computed by the device's fused kernels (Backend::cross_entropy); the reduction
// sums the row losses in double, in row order: the same loss for any thread count.
Tensor fused_cross_entropy(const Rows& input, const Tensor& host_targets, const Shape& target_shape,
                           const CrossEntropyOptions& options) {
  const Tensor& logits = input.logits;  // contiguous, as the kernel takes them
  const Tensor& targets = input.targets;
  const int64_t rows = logits.size(0);
  const DType dtype = logits.dtype();
  const Device device = logits.device();
  const TensorOptions statistics{.dtype = statistics_dtype(dtype), .device = device};
  Tensor lse = empty({rows}, statistics);
  Tensor row_loss = empty({rows}, statistics);
  const int64_t* ids = host_targets.data_ptr<int64_t>();
  int64_t counted = 0;
  for (int64_t r = 0; r < rows; ++r) counted += ids[r] != options.ignore_index ? 1 : 0;
  backend_for(device).cross_entropy(logits, targets, options.ignore_index, options.label_smoothing, lse, row_loss);

  Tensor out;
  double divisor = 1.0;
  if (options.reduction == Reduction::None) {
    out = row_loss.to(dtype).view(target_shape);
  } else {
    divisor = options.reduction == Reduction::Mean ? static_cast<double>(counted) : 1.0;
    if (device.is_cpu()) {
      double total = 0.0;
      for (double value : row_loss.to_vector<double>()) total += value;
      out = scalar_tensor(total / divisor, dtype);  // 0 / 0 = NaN when every row is ignored, as PyTorch
    } else {
      // On a device the sum stays there (no wait for the host): a fixed-order tree in double.
      out = div(sum(row_loss.to(kFloat64)), divisor).to(dtype);
    }
  }

  if (any_requires_grad({&logits})) {
    SavedTensor saved_logits(logits), saved_targets(targets), saved_lse(lse);
    const bool per_row = options.reduction == Reduction::None;
    const Shape logits_shape = logits.shape();
    record("cross_entropy", {logits}, {out}, [=](const GradientList& g) {
      const Tensor x = saved_logits.unpack("cross_entropy");
      Tensor grad = empty(logits_shape, {.dtype = x.dtype(), .device = x.device()});
      // Per-row scales for Reduction::None; one scale (g / divisor) otherwise.
      const Tensor upstream = contiguous(g[0].to(x.dtype()));
      backend_for(x.device())
          .cross_entropy_backward(x, saved_targets.unpack("cross_entropy"), saved_lse.unpack("cross_entropy"),
                                  upstream, per_row, divisor, options.ignore_index, options.label_smoothing, grad);
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
  // One op in the profiler: the target check's copies and the reduction nest inside it.
  profiler::detail::Scope profiled(profiler::EventKind::Op, "cross_entropy", {&logits, &targets}, "cross_entropy");
  Rows input = as_rows(logits, targets);
  // The device's fused kernels take the rows as laid out here, or the composed ops compute them.
  input.logits = contiguous(input.logits);
  input.targets = contiguous(input.targets);
  const KernelCase query{.kernel = FusedKernel::CrossEntropy, .tensors = {input.logits, input.targets}};
  if (!backend_for(input.logits.device()).supports(query).supported) {
    return detail::cross_entropy_composed(logits, targets, options);
  }
  const Tensor host_targets = check_targets(input.targets, input.logits.size(1), options.ignore_index);
  return fused_cross_entropy(input, host_targets, targets.shape(), options);
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
