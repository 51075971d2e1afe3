// Joining tensors along a dim (cat, stack) and cutting one into views (split, chunk).
#include "core/ops/join.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "core/grad_mode.h"
#include "core/graph.h"
#include "core/ops/factory.h"
#include "core/ops/internal.h"
#include "core/ops/view.h"

namespace dtrain {
namespace {

void check_list(const std::vector<Tensor>& tensors, const char* op) {
  if (tensors.empty()) fail(op, ": expected a non-empty list of tensors");
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!tensors[i].defined()) fail(op, ": tensor ", i, " of the list is undefined");
  }
}

// Pieces of x along d with the given lengths (which sum to its size there): views.
std::vector<Tensor> pieces(const Tensor& x, int64_t d, const std::vector<int64_t>& lengths) {
  std::vector<Tensor> result;
  result.reserve(lengths.size());
  int64_t start = 0;
  for (int64_t length : lengths) {
    result.push_back(narrow(x, d, start, length));
    start += length;
  }
  return result;
}

// Whether x's elements fill a block of memory exactly, in some order of its dims (a permuted
// contiguous tensor, such as q, k and v cut from one projection's output [B, T, 3, H, hd]
// permuted to [3, B, H, T, hd]).
bool is_permuted_dense(const Tensor& x) {
  if (x.numel() == 0) return false;
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (x.size(d) != 1) dims.push_back(d);
  }
  std::sort(dims.begin(), dims.end(), [&](int64_t a, int64_t b) { return x.stride(a) < x.stride(b); });
  int64_t expected = 1;
  for (int64_t d : dims) {
    if (x.stride(d) != expected) return false;
    expected *= x.size(d);
  }
  return true;
}

// The pieces' gradients joined along d into one tensor of the given shape and strides (x's,
// when x is permuted dense). The gradient then flows back through x's permute (and a view
// before it) as a contiguous tensor, where cat's contiguous result would be copied once more.
Tensor join_with_strides(const Shape& shape, const Strides& strides, const GradientList& gradients, int64_t d,
                         const std::vector<int64_t>& lengths) {
  const Tensor& first = gradients[0];
  Tensor joined = internal::make_view(empty({shape.numel()}, {.dtype = first.dtype(), .device = first.device()}), shape,
                                      strides, 0);
  std::vector<Tensor> windows = pieces(joined, d, lengths);
  for (size_t i = 0; i < gradients.size(); ++i) {
    if (lengths[i] > 0) windows[i].copy_(gradients[i]);
  }
  return joined;
}

// The pieces as the outputs of one recorded node, whose backward is a single join of their
// gradients (pieces without a gradient get zeros from the engine). Recording each narrow
// instead would make every piece's backward allocate and fill a gradient of x's full size.
std::vector<Tensor> split_pieces(const Tensor& x, int64_t d, const std::vector<int64_t>& lengths, const char* name) {
  std::vector<Tensor> result;
  {
    NoGradGuard no_grad;
    result = pieces(x, d, lengths);
  }
  if (any_requires_grad({&x})) {
    const bool keep_layout = !x.is_contiguous() && is_permuted_dense(x);
    const Shape shape = x.shape();
    const Strides strides = x.strides();
    record(name, {x}, result, [=](const GradientList& g) {
      bool one_dtype = true;
      for (const Tensor& gradient : g) one_dtype = one_dtype && gradient.defined() && gradient.dtype() == g[0].dtype();
      if (!keep_layout || !one_dtype) return GradientList{cat(g, d)};
      return GradientList{join_with_strides(shape, strides, g, d, lengths)};
    });
  }
  return result;
}

int64_t split_dim(const Tensor& x, int64_t dim, const char* op) {
  check_defined(x, op, "x");
  if (x.dim() == 0) fail(op, ": expected a tensor with at least one dimension, got a 0-d tensor");
  return normalize_dim(dim, x.dim(), op);
}

}  // namespace

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  check_list(tensors, "cat");
  const Tensor& first = tensors[0];
  if (first.dim() == 0) fail("cat: a 0-d tensor (tensor 0) cannot be concatenated; unsqueeze it or use stack");
  const int64_t d = normalize_dim(dim, first.dim(), "cat");
  DType dtype = first.dtype();
  std::vector<int64_t> lengths;
  lengths.reserve(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    internal::check_same_device(first, t, "cat");
    if (t.dim() != first.dim()) {
      fail("cat: expected every tensor to have ", first.dim(), " dims like tensor 0 of shape ", first.shape(),
           ", got tensor ", i, " of shape ", t.shape());
    }
    for (int64_t k = 0; k < first.dim(); ++k) {
      if (k != d && t.size(k) != first.size(k)) {
        fail("cat: sizes must match except in dim ", d, ", but tensor 0 has shape ", first.shape(), " and tensor ", i,
             " has shape ", t.shape(), " (dim ", k, ": ", first.size(k), " vs ", t.size(k), ")");
      }
    }
    dtype = promote_types(dtype, t.dtype());
    lengths.push_back(t.size(d));
  }
  Shape shape = first.shape();
  shape[d] = 0;
  for (int64_t length : lengths) shape[d] += length;
  Tensor out = empty(shape, {.dtype = dtype, .device = first.device()});
  {
    NoGradGuard no_grad;  // the copies are this op's business; its node is recorded below
    std::vector<Tensor> windows = pieces(out, d, lengths);
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (lengths[i] > 0) windows[i].copy_(tensors[i]);
    }
  }
  if (any_requires_grad(tensors)) {
    record("cat", tensors, {out}, [d, lengths](const GradientList& g) { return pieces(g[0], d, lengths); });
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  check_list(tensors, "stack");
  const Shape& shape = tensors[0].shape();
  for (size_t i = 1; i < tensors.size(); ++i) {
    if (tensors[i].shape() != shape) {
      fail("stack: expected every tensor to have shape ", shape, " like tensor 0, got tensor ", i, " of shape ",
           tensors[i].shape());
    }
  }
  const int64_t d = normalize_dim(dim, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> unsqueezed;
  unsqueezed.reserve(tensors.size());
  for (const Tensor& t : tensors) unsqueezed.push_back(unsqueeze(t, d));
  return cat(unsqueezed, d);
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  const int64_t d = split_dim(x, dim, "split");
  const int64_t size = x.size(d);
  if (split_size < 0 || (split_size == 0 && size > 0)) {
    fail("split: expected a positive split_size, got ", split_size, " for dim ", d, " of size ", size);
  }
  std::vector<int64_t> lengths;
  for (int64_t start = 0; start < size; start += split_size) lengths.push_back(std::min(split_size, size - start));
  if (lengths.empty()) lengths.push_back(0);  // an empty dim gives one empty piece, as PyTorch
  return split_pieces(x, d, lengths, "split");
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  const int64_t d = split_dim(x, dim, "split");
  int64_t total = 0;
  for (int64_t length : sizes) {
    if (length < 0) fail("split: sizes must be non-negative, got ", Shape(sizes));
    total += length;
  }
  if (total != x.size(d)) {
    fail("split: sizes ", Shape(sizes), " add up to ", total, " but dim ", d, " has size ", x.size(d), " (shape ",
         x.shape(), ")");
  }
  return split_pieces(x, d, sizes, "split");
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  const int64_t d = split_dim(x, dim, "chunk");
  if (chunks <= 0) fail("chunk: expected a positive number of chunks, got ", chunks);
  const int64_t size = x.size(d);
  // An empty dim gives `chunks` empty pieces, as PyTorch; otherwise pieces of ceil(size / chunks).
  if (size == 0) return split_pieces(x, d, std::vector<int64_t>(static_cast<size_t>(chunks), 0), "chunk");
  return split(x, (size + chunks - 1) / chunks, d);
}

}  // namespace dtrain
