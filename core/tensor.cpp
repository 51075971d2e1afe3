#include "core/tensor.h"

#include <atomic>
#include <cstring>
#include <type_traits>
#include <utility>

#include "core/backend.h"
#include "core/grad_mode.h"
#include "core/graph.h"
#include "core/ops/ops.h"

namespace dtrain {

TensorImpl::TensorImpl(StoragePtr storage_, Shape shape_, Strides strides_, int64_t offset_, DType dtype_)
    : storage(std::move(storage_)), shape(std::move(shape_)), strides(std::move(strides_)), offset(offset_), dtype(dtype_) {}

TensorImpl::~TensorImpl() = default;

TensorImpl& Tensor::impl() const {
  if (!impl_) fail("use of an undefined tensor (a default-constructed Tensor, or a gradient that was never computed)");
  return *impl_;
}

void check_defined(const Tensor& tensor, const char* op, const char* argument) {
  if (!tensor.defined()) fail(op, ": argument '", argument, "' is an undefined tensor");
}

int64_t Tensor::size(int64_t dim) const { return shape()[normalize_dim(dim, this->dim(), "size")]; }
int64_t Tensor::stride(int64_t dim) const { return strides()[normalize_dim(dim, this->dim(), "stride")]; }

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;  // no element is out of place (as PyTorch): a [3, 0] tensor can be copied as bytes
  int64_t expected = 1;
  const Shape& sizes = shape();
  for (size_t i = sizes.size(); i-- > 0;) {
    if (sizes[i] == 1) continue;
    if (strides()[i] != expected) return false;
    expected *= sizes[i];
  }
  return true;
}

void* Tensor::data() const {
  char* base = static_cast<char*>(impl().storage->data());
  // An empty tensor's storage holds no bytes (null), but a view into it (a piece of an empty cat
  // or stack) still has an offset: offsetting null is undefined behaviour, so it stays null.
  if (base == nullptr) return nullptr;
  return base + impl().offset * static_cast<int64_t>(element_size());
}

void Tensor::check_access(DType expected, const char* what) const {
  if (dtype() != expected) fail(what, ": expected a tensor of dtype ", expected, ", got ", dtype());
  if (!device().is_cpu()) fail(what, ": expected a CPU tensor, got one on ", device(), " (call .to(Device::cpu()) first)");
}

double Tensor::item() const {
  if (numel() != 1) fail("item: expected a tensor with exactly one element, got shape ", shape());
  Tensor host = to(Device::cpu()).to(kFloat64).contiguous();
  return *static_cast<const double*>(host.data());
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  DType target = std::is_same_v<T, uint8_t> ? kBool : dtype_of<std::conditional_t<std::is_same_v<T, uint8_t>, bool, T>>::value;
  Tensor host = to(Device::cpu()).to(target).contiguous();
  std::vector<T> values(static_cast<size_t>(numel()));
  if constexpr (std::is_same_v<T, bool>) {
    const uint8_t* bytes = static_cast<const uint8_t*>(host.data());
    for (size_t i = 0; i < values.size(); ++i) values[i] = bytes[i] != 0;
  } else if (!values.empty()) {
    std::memcpy(values.data(), host.data(), values.size() * sizeof(T));
  }
  return values;
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<bool> Tensor::to_vector<bool>() const;
template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;

// --- views and copies (free functions in core/ops) ---
Tensor Tensor::view(const Shape& shape) const { return dtrain::view(*this, shape); }
Tensor Tensor::reshape(const Shape& shape) const { return dtrain::reshape(*this, shape); }
Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const { return dtrain::flatten(*this, start_dim, end_dim); }
Tensor Tensor::transpose(int64_t dim0, int64_t dim1) const { return dtrain::transpose(*this, dim0, dim1); }
Tensor Tensor::t() const {
  if (dim() != 2) fail("t: expected a 2-d tensor, got shape ", shape());
  return dtrain::transpose(*this, 0, 1);
}
Tensor Tensor::permute(const std::vector<int64_t>& dims) const { return dtrain::permute(*this, dims); }
Tensor Tensor::narrow(int64_t dim, int64_t start, int64_t length) const { return dtrain::narrow(*this, dim, start, length); }
Tensor Tensor::slice(int64_t dim, int64_t start, int64_t end, int64_t step) const {
  return dtrain::slice(*this, dim, start, end, step);
}
Tensor Tensor::select(int64_t dim, int64_t index) const { return dtrain::select(*this, dim, index); }
Tensor Tensor::expand(const Shape& shape) const { return dtrain::expand(*this, shape); }
Tensor Tensor::squeeze() const { return dtrain::squeeze(*this); }
Tensor Tensor::squeeze(int64_t dim) const { return dtrain::squeeze(*this, dim); }
Tensor Tensor::unsqueeze(int64_t dim) const { return dtrain::unsqueeze(*this, dim); }
std::vector<Tensor> Tensor::split(int64_t split_size, int64_t dim) const { return dtrain::split(*this, split_size, dim); }
std::vector<Tensor> Tensor::chunk(int64_t chunks, int64_t dim) const { return dtrain::chunk(*this, chunks, dim); }
Tensor Tensor::contiguous() const { return dtrain::contiguous(*this); }
Tensor Tensor::clone() const { return dtrain::clone(*this); }
Tensor Tensor::to(DType dtype) const { return dtrain::to_dtype(*this, dtype); }
Tensor Tensor::to(Device device) const { return dtrain::to_device(*this, device); }

Tensor Tensor::sum() const { return dtrain::sum(*this); }
Tensor Tensor::sum(const std::vector<int64_t>& dims, bool keepdim) const { return dtrain::sum(*this, dims, keepdim); }
Tensor Tensor::mean() const { return dtrain::mean(*this); }
Tensor Tensor::mean(const std::vector<int64_t>& dims, bool keepdim) const { return dtrain::mean(*this, dims, keepdim); }
Tensor Tensor::exp() const { return dtrain::exp(*this); }
Tensor Tensor::log() const { return dtrain::log(*this); }
Tensor Tensor::sqrt() const { return dtrain::sqrt(*this); }
Tensor Tensor::abs() const { return dtrain::abs(*this); }
Tensor Tensor::relu() const { return dtrain::relu(*this); }
Tensor Tensor::tanh() const { return dtrain::tanh(*this); }
Tensor Tensor::pow(Scalar exponent) const { return dtrain::pow(*this, exponent); }
Tensor Tensor::matmul(const Tensor& other) const { return dtrain::matmul(*this, other); }

// --- in place ---
Tensor& Tensor::zero_() { return fill_(0); }

Tensor& Tensor::fill_(Scalar value) {
  check_inplace(*this, "fill_");
  backend_for(device()).fill(*this, value);
  storage()->bump_version();
  return *this;
}

Tensor& Tensor::copy_(const Tensor& source) {
  check_defined(source, "copy_", "source");
  check_inplace(*this, "copy_");
  if (source.is_same(*this)) return *this;
  Tensor broadcast = source.shape() == shape() ? source : dtrain::expand(source, shape());
  if (source.device() != device()) {
    broadcast = dtrain::to_device(broadcast.contiguous(), device());
  }
  backend_for(device()).copy(broadcast, *this);
  storage()->bump_version();
  return *this;
}

namespace {
// Runs a binary op whose output is the left operand itself.
Tensor& binary_inplace(Tensor& self, BinaryOp op, const Tensor& other, const char* name) {
  check_defined(other, name, "other");
  check_inplace(self, name);
  if (other.device() != self.device()) {
    fail(name, ": expected both tensors on ", self.device(), ", got the other on ", other.device());
  }
  Shape result = broadcast_shapes(self.shape(), other.shape(), name);
  if (result != self.shape()) {
    fail(name, ": the result of broadcasting ", self.shape(), " with ", other.shape(), " is ", result,
         ", which does not fit in the left operand's shape ", self.shape());
  }
  Tensor operand = other.dtype() == self.dtype() ? other : other.to(self.dtype());
  operand = dtrain::expand(operand, self.shape());
  Tensor in = self;
  backend_for(self.device()).binary(op, in, operand, self);
  self.storage()->bump_version();
  return self;
}
}  // namespace

Tensor& Tensor::add_(const Tensor& other, Scalar alpha) {
  if (alpha.to_double() == 1.0) return binary_inplace(*this, BinaryOp::Add, other, "add_");
  NoGradGuard no_grad;  // the scaled operand is a temporary
  return binary_inplace(*this, BinaryOp::Add, dtrain::mul(other, alpha), "add_");
}
Tensor& Tensor::add_(Scalar other) { return binary_inplace(*this, BinaryOp::Add, dtrain::scalar_tensor(other, dtype(), device()), "add_"); }
Tensor& Tensor::sub_(const Tensor& other) { return binary_inplace(*this, BinaryOp::Sub, other, "sub_"); }
Tensor& Tensor::mul_(const Tensor& other) { return binary_inplace(*this, BinaryOp::Mul, other, "mul_"); }
Tensor& Tensor::mul_(Scalar other) { return binary_inplace(*this, BinaryOp::Mul, dtrain::scalar_tensor(other, dtype(), device()), "mul_"); }
Tensor& Tensor::div_(const Tensor& other) { return binary_inplace(*this, BinaryOp::Div, other, "div_"); }
Tensor& Tensor::div_(Scalar other) { return binary_inplace(*this, BinaryOp::Div, dtrain::scalar_tensor(other, dtype(), device()), "div_"); }

// --- autograd state ---
AutogradMeta& Tensor::autograd_meta() const {
  TensorImpl& self = impl();
  if (!self.autograd) self.autograd = std::make_unique<AutogradMeta>();
  return *self.autograd;
}

AutogradMeta* Tensor::autograd_meta_if_exists() const { return impl().autograd.get(); }

bool Tensor::requires_grad() const {
  const AutogradMeta* meta = autograd_meta_if_exists();
  return meta != nullptr && (meta->requires_grad || meta->grad_fn != nullptr);
}

Tensor& Tensor::set_requires_grad(bool requires_grad) {
  if (!is_leaf()) {
    fail("set_requires_grad: only a leaf tensor's flag can be set; this one was produced by '", grad_fn()->name(),
         "' (use detach() to make a leaf)");
  }
  if (requires_grad && !is_floating(dtype())) {
    fail("set_requires_grad: only floating-point tensors can require gradients, got ", dtype());
  }
  autograd_meta().requires_grad = requires_grad;
  return *this;
}

Tensor Tensor::grad() const {
  const AutogradMeta* meta = autograd_meta_if_exists();
  return meta ? meta->grad : Tensor();
}

void Tensor::set_grad(const Tensor& gradient) {
  if (gradient.defined() && (gradient.shape() != shape() || gradient.dtype() != dtype())) {
    fail("set_grad: expected a gradient of shape ", shape(), " and dtype ", dtype(), ", got shape ",
         gradient.shape(), " and dtype ", gradient.dtype());
  }
  autograd_meta().grad = gradient;
}

const std::shared_ptr<Node>& Tensor::grad_fn() const {
  static const std::shared_ptr<Node> none;
  const AutogradMeta* meta = autograd_meta_if_exists();
  return meta ? meta->grad_fn : none;
}

uint32_t Tensor::output_nr() const {
  const AutogradMeta* meta = autograd_meta_if_exists();
  return meta ? meta->output_nr : 0;
}

Tensor Tensor::detach() const {
  const TensorImpl& self = impl();
  return Tensor(std::make_shared<TensorImpl>(self.storage, self.shape, self.strides, self.offset, self.dtype));
}

void Tensor::retain_grad() const {
  if (is_leaf()) return;  // leaves keep their gradient anyway
  if (autograd_meta().retains_grad) return;
  autograd_meta().retains_grad = true;
  std::weak_ptr<TensorImpl> weak = impl_;
  grad_fn()->add_output_hook(output_nr(), [weak](const Tensor& gradient) {
    if (auto alive = weak.lock()) {
      AutogradMeta& meta = *alive->autograd;
      NoGradGuard no_grad;
      if (meta.grad.defined()) meta.grad = dtrain::add(meta.grad, gradient);
      else meta.grad = gradient.clone();
    }
    return Tensor();
  });
}

namespace {
size_t next_hook_handle() {
  static std::atomic<size_t> counter{1};
  return counter.fetch_add(1);
}
}  // namespace

size_t Tensor::register_hook(GradientHook hook) const {
  if (!requires_grad()) fail("register_hook: the tensor does not require grad, so no gradient will reach the hook");
  size_t handle = next_hook_handle();
  if (is_leaf()) autograd_meta().hooks.emplace_back(handle, std::move(hook));
  else grad_fn()->add_output_hook(output_nr(), std::move(hook));
  return handle;
}

void Tensor::remove_hook(size_t handle) const {
  AutogradMeta* meta = autograd_meta_if_exists();
  if (meta) {
    auto& hooks = meta->hooks;
    for (auto it = hooks.begin(); it != hooks.end(); ++it) {
      if (it->first == handle) {
        hooks.erase(it);
        return;
      }
    }
    auto& post = meta->post_accumulate_hooks;
    for (auto it = post.begin(); it != post.end(); ++it) {
      if (it->first == handle) {
        post.erase(it);
        return;
      }
    }
  }
  if (grad_fn() && grad_fn()->remove_output_hook(handle)) return;
  fail("remove_hook: no hook with handle ", handle, " is registered on this tensor");
}

size_t Tensor::register_post_accumulate_grad_hook(PostAccumulateGradHook hook) const {
  if (!is_leaf() || !requires_grad()) {
    fail("register_post_accumulate_grad_hook: expected a leaf tensor that requires grad");
  }
  size_t handle = next_hook_handle();
  autograd_meta().post_accumulate_hooks.emplace_back(handle, std::move(hook));
  return handle;
}

}  // namespace dtrain
