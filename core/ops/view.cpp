// View ops (shared storage, new geometry) and the copies: contiguous, clone, dtype and device.
#include "core/ops/view.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <numeric>
#include <optional>

#include "core/backend.h"
#include "core/grad_mode.h"
#include "core/graph.h"
#include "core/ops/factory.h"
#include "core/ops/internal.h"
#include "core/profiler_recorder.h"

namespace dtrain {

namespace internal {
Tensor make_view(const Tensor& x, Shape shape, Strides strides, int64_t offset) {
  return Tensor(std::make_shared<TensorImpl>(x.storage(), std::move(shape), std::move(strides), offset, x.dtype()));
}
}  // namespace internal

namespace {

// Records a view's backward: the gradient reshaped back to the input's shape.
void record_reshape_like(const char* name, const Tensor& x, const Tensor& out) {
  if (!any_requires_grad({&x})) return;
  Shape input_shape = x.shape();
  record(name, {x}, {out}, [input_shape](const GradientList& g) { return GradientList{reshape(g[0], input_shape)}; });
}

Shape infer_size(const Shape& shape, int64_t numel, const char* op) {
  Shape result = shape;
  int64_t inferred = -1;
  int64_t known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (inferred >= 0) fail(op, ": only one dimension can be -1, got shape ", shape);
      inferred = static_cast<int64_t>(i);
    } else if (shape[i] < 0) {
      fail(op, ": invalid size ", shape[i], " in shape ", shape);
    } else {
      known *= shape[i];
    }
  }
  if (inferred >= 0) {
    if (known == 0 || numel % known != 0) fail(op, ": shape ", shape, " is invalid for a tensor of ", numel, " elements");
    result[inferred] = numel / known;
  } else if (known != numel) {
    fail(op, ": shape ", shape, " is invalid for a tensor of ", numel, " elements");
  }
  return result;
}

// Strides that let new_shape view the same elements as (old_shape, old_strides), if any
// (the algorithm of PyTorch's computeStride: chunks of contiguous dims must map onto chunks).
std::optional<Strides> view_strides(const Shape& old_shape, const Strides& old_strides, const Shape& new_shape) {
  if (old_shape.numel() == 0 || old_shape.empty()) return contiguous_strides(new_shape);
  Strides new_strides(new_shape.size(), 0);
  int64_t view_d = static_cast<int64_t>(new_shape.size()) - 1;
  int64_t chunk_base_stride = old_strides.back();
  int64_t tensor_numel = 1;
  int64_t view_numel = 1;
  for (int64_t tensor_d = static_cast<int64_t>(old_shape.size()) - 1; tensor_d >= 0; --tensor_d) {
    tensor_numel *= old_shape[tensor_d];
    bool chunk_ends = tensor_d == 0 || (old_shape[tensor_d - 1] != 1 &&
                                         old_strides[tensor_d - 1] != tensor_numel * chunk_base_stride);
    if (!chunk_ends) continue;
    while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
      new_strides[view_d] = view_numel * chunk_base_stride;
      view_numel *= new_shape[view_d];
      --view_d;
    }
    if (view_numel != tensor_numel) return std::nullopt;
    if (tensor_d > 0) {
      chunk_base_stride = old_strides[tensor_d - 1];
      tensor_numel = 1;
      view_numel = 1;
    }
  }
  if (view_d != -1) return std::nullopt;
  return new_strides;
}

}  // namespace

Tensor view(const Tensor& x, const Shape& shape) {
  check_defined(x, "view", "x");
  Shape target = infer_size(shape, x.numel(), "view");
  std::optional<Strides> strides = view_strides(x.shape(), x.strides(), target);
  if (!strides) {
    fail("view: shape ", target, " is not compatible with the input's shape ", x.shape(), " and strides ",
         strides_str(x.strides()), " (no copy-free view exists); use reshape");
  }
  Tensor out = internal::make_view(x, target, *strides, x.storage_offset());
  record_reshape_like("view", x, out);
  return out;
}

Tensor reshape(const Tensor& x, const Shape& shape) {
  check_defined(x, "reshape", "x");
  Shape target = infer_size(shape, x.numel(), "reshape");
  if (view_strides(x.shape(), x.strides(), target)) return view(x, target);
  profiler::detail::Scope profiled(profiler::EventKind::Op, "reshape", {&x});  // a reshape that copies
  return view(contiguous(x), target);
}

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  check_defined(x, "flatten", "x");
  if (x.dim() == 0) return reshape(x, Shape{1});
  int64_t start = normalize_dim(start_dim, x.dim(), "flatten");
  int64_t end = normalize_dim(end_dim, x.dim(), "flatten");
  if (start > end) fail("flatten: start_dim ", start_dim, " comes after end_dim ", end_dim);
  Shape shape(x.shape().begin(), x.shape().begin() + start);
  int64_t merged = 1;
  for (int64_t d = start; d <= end; ++d) merged *= x.shape()[d];
  shape.push_back(merged);
  shape.insert(shape.end(), x.shape().begin() + end + 1, x.shape().end());
  return reshape(x, shape);
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  check_defined(x, "permute", "x");
  if (static_cast<int64_t>(dims.size()) != x.dim()) {
    fail("permute: expected ", x.dim(), " dims for a tensor of shape ", x.shape(), ", got ", Shape(dims));
  }
  Shape shape(dims.size());
  Strides strides(dims.size());
  std::vector<int64_t> inverse(dims.size(), -1);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = normalize_dim(dims[i], x.dim(), "permute");
    if (inverse[d] != -1) fail("permute: dim ", d, " appears twice in ", Shape(dims));
    inverse[d] = static_cast<int64_t>(i);
    shape[i] = x.shape()[d];
    strides[i] = x.strides()[d];
  }
  Tensor out = internal::make_view(x, shape, strides, x.storage_offset());
  if (any_requires_grad({&x})) {
    record("permute", {x}, {out}, [inverse](const GradientList& g) { return GradientList{permute(g[0], inverse)}; });
  }
  return out;
}

Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1) {
  check_defined(x, "transpose", "x");
  std::vector<int64_t> order(static_cast<size_t>(x.dim()));
  std::iota(order.begin(), order.end(), 0);
  if (x.dim() == 0) return permute(x, order);
  std::swap(order[normalize_dim(dim0, x.dim(), "transpose")], order[normalize_dim(dim1, x.dim(), "transpose")]);
  return permute(x, order);
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  check_defined(x, "slice", "x");
  int64_t d = normalize_dim(dim, x.dim(), "slice");
  if (step <= 0) fail("slice: step must be positive, got ", step);
  int64_t size = x.shape()[d];
  if (start < 0) start += size;
  if (end < 0) end += size;
  start = std::clamp<int64_t>(start, 0, size);
  end = std::clamp<int64_t>(end, start, size);
  Shape shape = x.shape();
  Strides strides = x.strides();
  shape[d] = (end - start + step - 1) / step;
  strides[d] *= step;
  Tensor out = internal::make_view(x, shape, strides, x.storage_offset() + start * x.strides()[d]);
  if (any_requires_grad({&x})) {
    Shape input_shape = x.shape();
    DType dtype = x.dtype();
    Device device = x.device();
    record("slice", {x}, {out}, [=](const GradientList& g) {
      Tensor gradient = zeros(input_shape, {.dtype = dtype, .device = device});
      Tensor window = slice(gradient, d, start, end, step);
      window.copy_(g[0]);
      return GradientList{gradient};
    });
  }
  return out;
}

Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  check_defined(x, "narrow", "x");
  int64_t d = normalize_dim(dim, x.dim(), "narrow");
  int64_t size = x.shape()[d];
  if (start < 0) start += size;
  if (start < 0 || length < 0 || start + length > size) {
    fail("narrow: the range [", start, ", ", start + length, ") is out of bounds for dim ", d, " of size ", size,
         " (shape ", x.shape(), ")");
  }
  return slice(x, d, start, start + length, 1);
}

Tensor select(const Tensor& x, int64_t dim, int64_t index) {
  check_defined(x, "select", "x");
  int64_t d = normalize_dim(dim, x.dim(), "select");
  int64_t size = x.shape()[d];
  if (index < -size || index >= size) {
    fail("select: index ", index, " is out of range for dim ", d, " of size ", size, " (shape ", x.shape(), ")");
  }
  if (index < 0) index += size;
  return squeeze(narrow(x, d, index, 1), d);
}

Tensor expand(const Tensor& x, const Shape& shape) {
  check_defined(x, "expand", "x");
  if (shape.size() < x.shape().size()) {
    fail("expand: the target shape ", shape, " has fewer dims than the input's shape ", x.shape());
  }
  size_t extra = shape.size() - x.shape().size();
  Shape out_shape(shape.size());
  Strides out_strides(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < extra) {
      if (shape[i] < 0) fail("expand: -1 is not allowed for a new leading dim, got shape ", shape);
      out_shape[i] = shape[i];
      out_strides[i] = 0;
      continue;
    }
    int64_t size = x.shape()[i - extra];
    int64_t target = shape[i] == -1 ? size : shape[i];
    if (size == target) {
      out_shape[i] = size;
      out_strides[i] = x.strides()[i - extra];
    } else if (size == 1) {
      out_shape[i] = target;
      out_strides[i] = 0;
    } else {
      fail("expand: the input's shape ", x.shape(), " cannot be expanded to ", shape, " (dim ", i, " is ", size,
           ", not 1)");
    }
  }
  if (out_shape == x.shape()) return x;
  Tensor out = internal::make_view(x, out_shape, out_strides, x.storage_offset());
  // The node's automatic sum_to turns the gradient back into the input's shape.
  if (any_requires_grad({&x})) record("expand", {x}, {out}, [](const GradientList& g) { return GradientList{g[0]}; });
  return out;
}

Tensor squeeze(const Tensor& x) {
  check_defined(x, "squeeze", "x");
  Shape shape;
  Strides strides;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (x.shape()[d] == 1) continue;
    shape.push_back(x.shape()[d]);
    strides.push_back(x.strides()[d]);
  }
  Tensor out = internal::make_view(x, shape, strides, x.storage_offset());
  record_reshape_like("squeeze", x, out);
  return out;
}

Tensor squeeze(const Tensor& x, int64_t dim) {
  check_defined(x, "squeeze", "x");
  if (x.dim() == 0) return x;
  int64_t d = normalize_dim(dim, x.dim(), "squeeze");
  if (x.shape()[d] != 1) return x;
  Shape shape = x.shape();
  Strides strides = x.strides();
  shape.erase(shape.begin() + d);
  strides.erase(strides.begin() + d);
  Tensor out = internal::make_view(x, shape, strides, x.storage_offset());
  record_reshape_like("squeeze", x, out);
  return out;
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  check_defined(x, "unsqueeze", "x");
  int64_t d = normalize_dim(dim, x.dim() + 1, "unsqueeze");
  Shape shape = x.shape();
  Strides strides = x.strides();
  int64_t stride = d < x.dim() ? x.strides()[d] * x.shape()[d] : 1;
  shape.insert(shape.begin() + d, 1);
  strides.insert(strides.begin() + d, stride);
  Tensor out = internal::make_view(x, shape, strides, x.storage_offset());
  record_reshape_like("unsqueeze", x, out);
  return out;
}

Tensor as_strided(const Tensor& x, const Shape& shape, const Strides& strides, int64_t offset) {
  check_defined(x, "as_strided", "x");
  if (shape.size() != strides.size()) {
    fail("as_strided: shape ", shape, " and strides ", strides_str(strides), " differ in length");
  }
  int64_t last = offset;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0 || strides[i] < 0) fail("as_strided: negative size or stride in ", shape, " / ", strides_str(strides));
    if (shape[i] == 0) last = offset - 1;
    if (last >= offset) last += (shape[i] - 1) * strides[i];
  }
  int64_t capacity = static_cast<int64_t>(x.storage()->nbytes() / x.element_size());
  if (offset < 0 || last >= capacity) {
    fail("as_strided: shape ", shape, ", strides ", strides_str(strides), " and offset ", offset,
         " reach element ", last, " but the storage holds ", capacity);
  }
  return internal::make_view(x, shape, strides, offset);
}

Tensor clone(const Tensor& x) {
  check_defined(x, "clone", "x");
  Tensor out = empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
  backend_for(x.device()).copy(x, out);
  if (any_requires_grad({&x})) record("clone", {x}, {out}, [](const GradientList& g) { return GradientList{g[0]}; });
  return out;
}

Tensor contiguous(const Tensor& x) {
  check_defined(x, "contiguous", "x");
  if (x.is_contiguous()) return x;
  profiler::detail::ContiguousCopyScope profiled(x);  // counted against the op that asked for it
  return clone(x);
}

Tensor to_dtype(const Tensor& x, DType dtype) {
  check_defined(x, "to", "x");
  if (x.dtype() == dtype) return x;
  Tensor out = empty(x.shape(), {.dtype = dtype, .device = x.device()});
  backend_for(x.device()).copy(x, out);
  // The node casts the gradient back to the input's dtype.
  if (is_floating(dtype) && any_requires_grad({&x})) {
    record("to", {x}, {out}, [](const GradientList& g) { return GradientList{g[0]}; });
  }
  return out;
}

Tensor to_device(const Tensor& x, Device device) {
  check_defined(x, "to", "x");
  if (x.device() == device) return x;
  Tensor source = contiguous(x);
  Tensor out = empty(x.shape(), {.dtype = x.dtype(), .device = device});
  if (device.is_cpu()) {
    backend_for(source.device()).copy_to_host(source, out);
  } else if (source.device().is_cpu()) {
    backend_for(device).copy_from_host(source, out);
  } else {  // device to device goes through the host
    Tensor staged = to_device(source, Device::cpu());
    backend_for(device).copy_from_host(staged, out);
  }
  if (any_requires_grad({&x})) {
    Device input_device = x.device();
    record("to", {x}, {out}, [input_device](const GradientList& g) { return GradientList{to_device(g[0], input_device)}; });
  }
  return out;
}

}  // namespace dtrain
