#include "data/collate.h"

#include <cstdint>
#include <cstring>

#include "core/grad_mode.h"
#include "core/ops/factory.h"

namespace dtrain {

namespace {
// A contiguous CPU tensor with the values of tensor (no copy when it already is one).
Tensor host_contiguous(const Tensor& tensor) {
  NoGradGuard no_grad;  // batches are data, not part of any graph
  Tensor host = tensor.device().is_cpu() ? tensor : tensor.to(Device::cpu());
  return host.is_contiguous() ? host : host.contiguous();
}
}  // namespace

Tensor gather_rows(const Tensor& source, const std::vector<int64_t>& indices) {
  check_defined(source, "gather_rows", "source");
  if (source.dim() == 0) fail("gather_rows: expected a tensor with a row dimension, got a 0-d tensor");
  Tensor host = host_contiguous(source);
  int64_t rows = host.size(0);
  Shape shape = host.shape();
  shape[0] = static_cast<int64_t>(indices.size());
  Tensor out = empty(shape, {.dtype = host.dtype()});
  size_t row_bytes = rows == 0 ? 0 : host.nbytes() / static_cast<size_t>(rows);
  if (row_bytes == 0) return out;  // rows of zero elements: nothing to copy
  const char* from = static_cast<const char*>(host.data());
  char* to = static_cast<char*>(out.data());
  for (size_t i = 0; i < indices.size(); ++i) {
    int64_t index = indices[i];
    if (index < 0 || index >= rows) fail("gather_rows: expected indices in [0, ", rows, "), got ", index, " at position ", i);
    std::memcpy(to + i * row_bytes, from + static_cast<size_t>(index) * row_bytes, row_bytes);
  }
  return out;
}

Tensor stack_rows(const std::vector<Tensor>& tensors) {
  if (tensors.empty()) fail("stack_rows: expected at least one tensor, got none");
  for (size_t i = 0; i < tensors.size(); ++i) check_defined(tensors[i], "stack_rows", "tensors");
  const Tensor& first = tensors[0];
  Shape shape = first.shape();
  shape.insert(shape.begin(), static_cast<int64_t>(tensors.size()));
  Tensor out = empty(shape, {.dtype = first.dtype()});
  size_t row_bytes = first.nbytes();
  char* to = row_bytes == 0 ? nullptr : static_cast<char*>(out.data());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& tensor = tensors[i];
    if (tensor.shape() != first.shape() || tensor.dtype() != first.dtype()) {
      fail("stack_rows: expected every tensor to have shape ", first.shape(), " and dtype ", first.dtype(),
           " (as tensor 0), got shape ", tensor.shape(), " and dtype ", tensor.dtype(), " at tensor ", i);
    }
    if (row_bytes == 0) continue;
    Tensor host = host_contiguous(tensor);
    std::memcpy(to + i * row_bytes, host.data(), row_bytes);
  }
  return out;
}

}  // namespace dtrain
