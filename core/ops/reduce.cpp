// Reductions: sum, mean, var, max/min (over everything or one dim), argmax/argmin, sum_to.
#include "core/ops/reduce.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "core/backend.h"
#include "core/grad_mode.h"
#include "core/graph.h"
#include "core/ops/elementwise.h"
#include "core/ops/factory.h"
#include "core/ops/index.h"
#include "core/ops/internal.h"
#include "core/ops/view.h"

namespace dtrain {
namespace {

// The dims an op reduces: normalised, sorted and unique; an empty list means every dim.
// A 0-d tensor accepts dim 0 or -1 (as PyTorch) and has nothing to reduce.
std::vector<int64_t> reduced_dims(const Tensor& x, const std::vector<int64_t>& dims, const char* op) {
  std::vector<int64_t> result;
  if (dims.empty()) {
    for (int64_t d = 0; d < x.dim(); ++d) result.push_back(d);
    return result;
  }
  for (int64_t dim : dims) {
    int64_t d = normalize_dim(dim, x.dim(), op);
    if (x.dim() == 0) continue;
    if (std::find(result.begin(), result.end(), d) != result.end()) {
      fail(op, ": dim ", d, " appears more than once in the reduced dims ", Shape(dims));
    }
    result.push_back(d);
  }
  std::sort(result.begin(), result.end());
  return result;
}

Shape keepdim_shape(const Shape& shape, const std::vector<int64_t>& dims) {
  Shape kept = shape;
  for (int64_t d : dims) kept[d] = 1;
  return kept;
}

Shape result_shape(const Shape& shape, const std::vector<int64_t>& dims, bool keepdim) {
  if (keepdim) return keepdim_shape(shape, dims);
  Shape result;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    if (std::find(dims.begin(), dims.end(), d) == dims.end()) result.push_back(shape[d]);
  }
  return result;
}

int64_t reduced_count(const Shape& shape, const std::vector<int64_t>& dims) {
  int64_t count = 1;
  for (int64_t d : dims) count *= shape[d];
  return count;
}

// A fresh contiguous tensor seen with another shape of the same numel; no history.
Tensor reshaped_result(const Tensor& fresh, const Shape& shape) {
  if (fresh.shape() == shape) return fresh;
  return internal::make_view(fresh, shape, contiguous_strides(shape), fresh.storage_offset());
}

// Runs the reduce kernel into a new tensor of out_dtype; dims as from reduced_dims.
Tensor run_reduce(ReductionKind op, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, DType out_dtype) {
  Tensor out = empty(keepdim_shape(x.shape(), dims), {.dtype = out_dtype, .device = x.device()});
  backend_for(x.device()).reduce(op, x, dims, out);
  return reshaped_result(out, result_shape(x.shape(), dims, keepdim));
}

// The gradient of a reduction's output spread back over the input's shape (a broadcast view).
Tensor expand_back(const Tensor& gradient, const Shape& keepdim, const Shape& input_shape) {
  return expand(reshape(gradient, keepdim), input_shape);
}

void check_floating(const Tensor& x, const char* op) {
  if (!is_floating(x.dtype())) {
    fail(op, ": expected a floating-point tensor, got ", x.dtype(), " (convert with .to(kFloat32) first)");
  }
}

void check_not_bool(const Tensor& x, const char* op) {
  if (x.dtype() == kBool) fail(op, ": expected a numeric tensor, got bool (convert with .to(kInt64) first)");
}

// max/min over everything. The gradient is split evenly among the elements equal to the
// extreme (as PyTorch's max() without a dim).
Tensor extreme_of_all(const Tensor& x, ReductionKind op, const char* name) {
  check_defined(x, name, "x");
  check_not_bool(x, name);
  if (x.numel() == 0) {
    fail(name, ": expected a non-empty tensor to reduce over all dims, got shape ", x.shape(),
         " (the extreme of no elements is undefined)");
  }
  std::vector<int64_t> all = reduced_dims(x, {}, name);
  Tensor out = run_reduce(op, x, all, /*keepdim=*/false, x.dtype());
  if (any_requires_grad({&x})) {
    SavedTensor saved_x(x), saved_out(out);
    record(name, {x}, {out}, [saved_x, saved_out, name](const GradientList& g) {
      Tensor input = saved_x.unpack(name);
      Tensor ties = eq(input, saved_out.unpack(name)).to(g[0].dtype());
      return GradientList{mul(ties, div(g[0], sum(ties)))};
    });
  }
  return out;
}

// max/min along one dim with the (first) positions; the gradient goes to those positions.
ValuesAndIndices extreme_along(const Tensor& x, int64_t dim, bool keepdim, ReductionKind op, const char* name) {
  check_defined(x, name, "x");
  check_not_bool(x, name);
  int64_t d = normalize_dim(dim, x.dim(), name);
  // A 0-d tensor is reduced as the one-element vector it holds.
  Tensor input = x.dim() == 0 ? internal::make_view(x, Shape{1}, Strides{1}, x.storage_offset()) : x;
  if (input.size(d) == 0) {
    fail(name, ": cannot reduce dim ", d, " of size 0 (input shape ", x.shape(), "): the extreme of no elements is undefined");
  }
  Shape kept = keepdim_shape(input.shape(), {d});
  Tensor values = empty(kept, {.dtype = x.dtype(), .device = x.device()});
  Tensor indices = empty(kept, {.dtype = kInt64, .device = x.device()});
  backend_for(x.device()).reduce_with_index(op, input, d, values, indices);
  Shape shape = x.dim() == 0 ? Shape{} : result_shape(x.shape(), {d}, keepdim);
  ValuesAndIndices result{reshaped_result(values, shape), reshaped_result(indices, shape)};
  if (any_requires_grad({&x})) {
    SavedTensor saved_indices(indices);
    Shape input_shape = input.shape();
    record(name, {x}, {result.values}, [saved_indices, kept, input_shape, d, name](const GradientList& g) {
      Tensor gradient = reshape(g[0], kept);
      Tensor spread = zeros(input_shape, {.dtype = gradient.dtype(), .device = gradient.device()});
      return GradientList{scatter_add(spread, d, saved_indices.unpack(name), gradient)};
    });
  }
  return result;
}

}  // namespace

Tensor sum(const Tensor& x) { return sum(x, {}, false); }

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  check_defined(x, "sum", "x");
  std::vector<int64_t> reduced = reduced_dims(x, dims, "sum");
  DType out_dtype = is_floating(x.dtype()) ? x.dtype() : kInt64;  // integers and bools sum to int64, as PyTorch
  Tensor out = run_reduce(ReductionKind::Sum, x, reduced, keepdim, out_dtype);
  if (any_requires_grad({&x})) {
    Shape kept = keepdim_shape(x.shape(), reduced), input_shape = x.shape();
    record("sum", {x}, {out}, [kept, input_shape](const GradientList& g) {
      return GradientList{expand_back(g[0], kept, input_shape)};
    });
  }
  return out;
}

Tensor mean(const Tensor& x) { return mean(x, {}, false); }

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  check_defined(x, "mean", "x");
  check_floating(x, "mean");
  std::vector<int64_t> reduced = reduced_dims(x, dims, "mean");
  Tensor out = run_reduce(ReductionKind::Mean, x, reduced, keepdim, x.dtype());
  if (any_requires_grad({&x})) {
    Shape kept = keepdim_shape(x.shape(), reduced), input_shape = x.shape();
    double count = static_cast<double>(reduced_count(x.shape(), reduced));
    record("mean", {x}, {out}, [kept, input_shape, count](const GradientList& g) {
      return GradientList{div(expand_back(g[0], kept, input_shape), count)};
    });
  }
  return out;
}

Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) {
  check_defined(x, "var", "x");
  check_floating(x, "var");
  std::vector<int64_t> reduced = reduced_dims(x, dims, "var");
  // As torch.var (which only warns): the divisor is max(0, N - correction), so N - correction <= 0
  // gives inf, or NaN where the sum of squares is 0 as well (always for an empty dim).
  const double divisor = static_cast<double>(std::max<int64_t>(0, reduced_count(x.shape(), reduced) - correction));
  Tensor out, centre;
  {
    NoGradGuard no_grad;  // one node for the whole formula, recorded below
    // Two passes (mean first, then squared deviations) avoid the cancellation of E[x^2] - E[x]^2;
    // 16-bit inputs are widened so the intermediate sums keep their precision.
    Tensor wide = x.dtype() == kBFloat16 || x.dtype() == kFloat16 ? x.to(kFloat32) : x;
    centre = mean(wide, reduced, /*keepdim=*/true);
    Tensor deviation = sub(wide, centre);
    out = div(sum(mul(deviation, deviation), reduced, keepdim), divisor).to(x.dtype());
  }
  if (any_requires_grad({&x})) {
    SavedTensor saved_x(x), saved_centre(centre);
    Shape kept = keepdim_shape(x.shape(), reduced);
    record("var", {x}, {out}, [saved_x, saved_centre, kept, divisor](const GradientList& g) {
      Tensor deviation = sub(saved_x.unpack("var"), saved_centre.unpack("var"));
      return GradientList{mul(mul(deviation, 2.0 / divisor), reshape(g[0], kept))};
    });
  }
  return out;
}

Tensor max(const Tensor& x) { return extreme_of_all(x, ReductionKind::Max, "max"); }
Tensor min(const Tensor& x) { return extreme_of_all(x, ReductionKind::Min, "min"); }

ValuesAndIndices max(const Tensor& x, int64_t dim, bool keepdim) { return extreme_along(x, dim, keepdim, ReductionKind::Max, "max"); }
ValuesAndIndices min(const Tensor& x, int64_t dim, bool keepdim) { return extreme_along(x, dim, keepdim, ReductionKind::Min, "min"); }

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  NoGradGuard no_grad;  // positions have no gradient
  return extreme_along(x, dim, keepdim, ReductionKind::Max, "argmax").indices;
}

Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) {
  NoGradGuard no_grad;
  return extreme_along(x, dim, keepdim, ReductionKind::Min, "argmin").indices;
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  check_defined(x, "sum_to", "x");
  if (x.shape() == shape) return x;
  const int64_t leading = x.dim() - static_cast<int64_t>(shape.size());
  bool fits = leading >= 0;
  std::vector<int64_t> dims;
  for (int64_t d = 0; fits && d < leading; ++d) dims.push_back(d);
  for (size_t i = 0; fits && i < shape.size(); ++i) {
    int64_t size = x.shape()[leading + static_cast<int64_t>(i)];
    if (shape[i] == size) continue;
    if (shape[i] == 1) dims.push_back(leading + static_cast<int64_t>(i));
    else fits = false;
  }
  if (!fits) {
    fail("sum_to: cannot sum a tensor of shape ", x.shape(), " to shape ", shape,
         " (expected a shape that broadcasts to ", x.shape(), ")");
  }
  return reshape(sum(x, dims, /*keepdim=*/true), shape);
}

}  // namespace dtrain
