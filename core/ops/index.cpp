// Indexing by tensors of positions: gather / scatter_add (an index per element, Int64) and
// index_select / index_add (a 1-d index of whole slices, Int64 or Int32). Each is the other's
// backward: what one reads from a position, the other adds back to it.
#include "core/ops/index.h"

#include <cstdint>

#include "core/backend.h"
#include "core/grad_mode.h"
#include "core/graph.h"
#include "core/ops/factory.h"
#include "core/ops/internal.h"
#include "core/ops/view.h"

namespace dtrain {
namespace {

void check_rank_at_least_one(const Tensor& x, const char* op) {
  if (x.dim() == 0) fail(op, ": expected an input with at least one dimension, got a 0-d tensor");
}

void check_same_dtype(const Tensor& x, const Tensor& source, const char* op) {
  if (source.dtype() != x.dtype()) {
    fail(op, ": expected source of dtype ", x.dtype(), " like the input, got ", source.dtype());
  }
}

// gather / scatter_add: an Int64 index with the input's rank.
void check_element_index(const Tensor& x, const Tensor& index, const char* op) {
  internal::check_same_device(x, index, op);
  if (index.dtype() != kInt64) fail(op, ": expected an int64 index, got ", index.dtype());
  if (index.dim() != x.dim()) {
    fail(op, ": expected an index with as many dims as the input (", x.dim(), "), got index of shape ", index.shape(),
         " for input of shape ", x.shape());
  }
}

// index_select / index_add: a 1-d (or 0-d) Int64 or Int32 index.
void check_slice_index(const Tensor& x, const Tensor& index, const char* op) {
  internal::check_same_device(x, index, op);
  if (index.dtype() != kInt64 && index.dtype() != kInt32) {
    fail(op, ": expected an int64 or int32 index, got ", index.dtype());
  }
  if (index.dim() > 1) fail(op, ": expected a 1-d index, got index of shape ", index.shape());
}

// A copy of x, the starting point of the out-of-place accumulating ops.
Tensor copy_of(const Tensor& x) {
  Tensor out = empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
  backend_for(x.device()).copy(x, out);
  return out;
}

// part placed in the leading corner of a zero tensor of shape (scatter_add's source may be larger
// than its index; the elements the index does not reach get no gradient).
Tensor zero_padded(const Tensor& part, const Shape& shape) {
  if (part.shape() == shape) return part;
  NoGradGuard no_grad;
  Tensor padded = zeros(shape, {.dtype = part.dtype(), .device = part.device()});
  Tensor corner = padded;
  for (int64_t d = 0; d < part.dim(); ++d) corner = narrow(corner, d, 0, part.size(d));
  corner.copy_(part);
  return padded;
}

// index_add; with IndexBounds::Validated for a caller that has already checked every index for x's
// size along dim (a GPU then skips the check that makes the host wait for it).
Tensor bounded_index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& source, IndexBounds bounds) {
  check_defined(x, "index_add", "x");
  check_defined(index, "index_add", "index");
  check_defined(source, "index_add", "source");
  check_rank_at_least_one(x, "index_add");
  check_slice_index(x, index, "index_add");
  internal::check_same_device(x, source, "index_add");
  check_same_dtype(x, source, "index_add");
  const int64_t d = normalize_dim(dim, x.dim(), "index_add");
  Shape expected = x.shape();
  expected[d] = index.numel();
  if (source.shape() != expected) {
    fail("index_add: expected source of shape ", expected, " (the input's shape ", x.shape(), " with dim ", d,
         " sized by the index's ", index.numel(), " entries), got ", source.shape());
  }
  Tensor out = copy_of(x);
  backend_for(x.device()).index_add(out, d, index, source, bounds);
  if (any_requires_grad({&x, &source})) {
    SavedTensor saved_index(index);
    record("index_add", {x, source}, {out}, [saved_index, d](const GradientList& g) {
      return GradientList{g[0], index_select(g[0], d, saved_index.unpack("index_add"))};
    });
  }
  return out;
}

}  // namespace

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  check_defined(x, "gather", "x");
  check_defined(index, "gather", "index");
  check_rank_at_least_one(x, "gather");
  check_element_index(x, index, "gather");
  const int64_t d = normalize_dim(dim, x.dim(), "gather");
  for (int64_t i = 0; i < x.dim(); ++i) {
    if (i != d && index.size(i) > x.size(i)) {
      fail("gather: index of shape ", index.shape(), " is larger than the input of shape ", x.shape(), " in dim ", i,
           " (", index.size(i), " > ", x.size(i), ")");
    }
  }
  Tensor out = empty(index.shape(), {.dtype = x.dtype(), .device = x.device()});
  backend_for(x.device()).gather(x, d, index, out);
  if (any_requires_grad({&x})) {
    SavedTensor saved_index(index);
    Shape input_shape = x.shape();
    record("gather", {x}, {out}, [saved_index, input_shape, d](const GradientList& g) {
      Tensor spread = zeros(input_shape, {.dtype = g[0].dtype(), .device = g[0].device()});
      return GradientList{scatter_add(spread, d, saved_index.unpack("gather"), g[0])};
    });
  }
  return out;
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& source) {
  check_defined(x, "scatter_add", "x");
  check_defined(index, "scatter_add", "index");
  check_defined(source, "scatter_add", "source");
  check_rank_at_least_one(x, "scatter_add");
  check_element_index(x, index, "scatter_add");
  internal::check_same_device(x, source, "scatter_add");
  check_same_dtype(x, source, "scatter_add");
  if (source.dim() != x.dim()) {
    fail("scatter_add: expected source with as many dims as the input (", x.dim(), "), got source of shape ",
         source.shape(), " for input of shape ", x.shape());
  }
  const int64_t d = normalize_dim(dim, x.dim(), "scatter_add");
  for (int64_t i = 0; i < x.dim(); ++i) {
    if (index.size(i) > source.size(i)) {
      fail("scatter_add: index of shape ", index.shape(), " is larger than source of shape ", source.shape(), " in dim ",
           i, " (", index.size(i), " > ", source.size(i), ")");
    }
    if (i != d && index.size(i) > x.size(i)) {
      fail("scatter_add: index of shape ", index.shape(), " is larger than the input of shape ", x.shape(), " in dim ",
           i, " (", index.size(i), " > ", x.size(i), ")");
    }
  }
  Tensor out = copy_of(x);
  backend_for(x.device()).scatter_add(out, d, index, source);
  if (any_requires_grad({&x, &source})) {
    SavedTensor saved_index(index);
    Shape source_shape = source.shape();
    record("scatter_add", {x, source}, {out}, [saved_index, source_shape, d](const GradientList& g) {
      Tensor source_gradient = gather(g[0], d, saved_index.unpack("scatter_add"));
      return GradientList{g[0], zero_padded(source_gradient, source_shape)};
    });
  }
  return out;
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  check_defined(x, "index_select", "x");
  check_defined(index, "index_select", "index");
  check_rank_at_least_one(x, "index_select");
  check_slice_index(x, index, "index_select");
  const int64_t d = normalize_dim(dim, x.dim(), "index_select");
  Shape shape = x.shape();
  shape[d] = index.numel();
  Tensor out = empty(shape, {.dtype = x.dtype(), .device = x.device()});
  backend_for(x.device()).index_select(x, d, index, out);
  if (any_requires_grad({&x})) {
    SavedTensor saved_index(index);
    Shape input_shape = x.shape();
    record("index_select", {x}, {out}, [saved_index, input_shape, d](const GradientList& g) {
      Tensor spread = zeros(input_shape, {.dtype = g[0].dtype(), .device = g[0].device()});
      // The kernel above checked this index against input_shape[d], and unpack proves it unchanged
      // since: the backward (an embedding's weight gradient) need not check it again, which on a
      // GPU would make the host wait for the device in the middle of backward().
      return GradientList{bounded_index_add(spread, d, saved_index.unpack("index_select"), g[0], IndexBounds::Validated)};
    });
  }
  return out;
}

Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& source) {
  return bounded_index_add(x, dim, index, source, IndexBounds::Check);
}

}  // namespace dtrain
