#pragma once
// Tensor: a cheap value-type handle. Copying a Tensor copies a pointer; two handles from one
// copy are the same tensor (same gradient, same autograd history). The TensorImpl behind it
// holds the storage (shared with views), shape, strides, offset, dtype and, once needed, the
// autograd metadata.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/scalar.h"
#include "core/shape.h"
#include "core/storage.h"

namespace dtrain {

class Node;
class Tensor;
struct AutogradMeta;

// A hook on a tensor's gradient. Returning a defined tensor replaces the gradient.
using GradientHook = std::function<Tensor(const Tensor& gradient)>;
// Fires on a leaf once its .grad() holds the final gradient of this backward pass.
using PostAccumulateGradHook = std::function<void(const Tensor& leaf)>;

struct TensorImpl {
  TensorImpl(StoragePtr storage, Shape shape, Strides strides, int64_t offset, DType dtype);
  ~TensorImpl();

  StoragePtr storage;
  Shape shape;
  Strides strides;     // in elements
  int64_t offset = 0;  // in elements, from the start of storage
  DType dtype;
  std::unique_ptr<AutogradMeta> autograd;  // null for tensors that never took part in autograd
};

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor (no data), as a missing gradient
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t size(int64_t dim) const;
  int64_t numel() const { return impl().shape.numel(); }
  const Strides& strides() const { return impl().strides; }
  int64_t stride(int64_t dim) const;
  int64_t storage_offset() const { return impl().offset; }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  const StoragePtr& storage() const { return impl().storage; }
  size_t element_size() const { return dtype_size(dtype()); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * element_size(); }
  bool is_contiguous() const;
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }
  TensorImpl* unsafe_impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  // Address of the first element (storage + offset). Raises if the storage is released.
  void* data() const;
  // Typed address; raises unless T is this tensor's element type and the tensor is on the CPU.
  template <typename T>
  T* data_ptr() const {
    check_access(dtype_of<T>::value, "data_ptr");
    return static_cast<T*>(data());
  }
  // The one value of a one-element tensor, as double (any dtype, any device).
  double item() const;
  template <typename T>
  T item() const { return static_cast<T>(item()); }
  // All values in logical (row-major) order, converted to T.
  template <typename T>
  std::vector<T> to_vector() const;

  std::string str() const;  // what printing shows

  // Views: no copy, they share storage (and version counter) with this tensor.
  Tensor view(const Shape& shape) const;
  Tensor reshape(const Shape& shape) const;  // a view when strides allow, else a copy
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  Tensor t() const;  // transpose of a matrix
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor expand(const Shape& shape) const;
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  std::vector<Tensor> split(int64_t split_size, int64_t dim = 0) const;
  std::vector<Tensor> chunk(int64_t chunks, int64_t dim = 0) const;
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;

  // Autograd
  bool requires_grad() const;
  Tensor& set_requires_grad(bool requires_grad = true);  // leaves only
  Tensor grad() const;                                    // undefined until a backward reached it
  void set_grad(const Tensor& gradient);
  const std::shared_ptr<Node>& grad_fn() const;
  uint32_t output_nr() const;
  bool is_leaf() const { return grad_fn() == nullptr; }
  Tensor detach() const;  // same data and version counter, no history
  // Runs the backward pass from this tensor (scalar unless gradient is given). Implemented by
  // the engine in autograd/ (link dtrain_autograd, or the dtrain umbrella target).
  void backward(const Tensor& gradient = Tensor(), bool retain_graph = false) const;
  void retain_grad() const;  // keep .grad() on a non-leaf
  size_t register_hook(GradientHook hook) const;
  void remove_hook(size_t handle) const;
  size_t register_post_accumulate_grad_hook(PostAccumulateGradHook hook) const;

  // In-place ops: they bump the storage's version counter (autograd refuses stale saved
  // tensors) and refuse tensors that require grad while grad mode is on.
  Tensor& zero_();
  Tensor& fill_(Scalar value);
  Tensor& copy_(const Tensor& source);
  Tensor& add_(const Tensor& other, Scalar alpha = 1);
  Tensor& add_(Scalar other);
  Tensor& sub_(const Tensor& other);
  Tensor& mul_(const Tensor& other);
  Tensor& mul_(Scalar other);
  Tensor& div_(const Tensor& other);
  Tensor& div_(Scalar other);

  // Common ops as members, for chaining (all defined as free functions in ops/).
  Tensor sum() const;
  Tensor sum(const std::vector<int64_t>& dims, bool keepdim = false) const;
  Tensor mean() const;
  Tensor mean(const std::vector<int64_t>& dims, bool keepdim = false) const;
  Tensor exp() const;
  Tensor log() const;
  Tensor sqrt() const;
  Tensor abs() const;
  Tensor relu() const;
  Tensor tanh() const;
  Tensor pow(Scalar exponent) const;
  Tensor matmul(const Tensor& other) const;

  AutogradMeta& autograd_meta() const;  // created on first use
  AutogradMeta* autograd_meta_if_exists() const;
  void check_access(DType expected, const char* what) const;

 private:
  TensorImpl& impl() const;
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& stream, const Tensor& tensor);

// Raises naming op unless t is defined.
void check_defined(const Tensor& tensor, const char* op, const char* argument);

extern template std::vector<float> Tensor::to_vector<float>() const;
extern template std::vector<double> Tensor::to_vector<double>() const;
extern template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
extern template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
extern template std::vector<bool> Tensor::to_vector<bool>() const;
extern template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;

}  // namespace dtrain
