#include "core/ops/factory.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <utility>

#include "core/backend.h"
#include "core/graph.h"
#include "core/ops/view.h"

namespace dtrain {

Tensor empty(const Shape& shape, TensorOptions options) {
  for (int64_t size : shape) {
    if (size < 0) fail("empty: sizes must be non-negative, got shape ", shape);
  }
  size_t nbytes = static_cast<size_t>(shape.numel()) * dtype_size(options.dtype);
  auto storage = std::make_shared<Storage>(nbytes, options.device, current_memory_tag());
  Tensor tensor(std::make_shared<TensorImpl>(std::move(storage), shape, contiguous_strides(shape), 0, options.dtype));
  if (options.requires_grad) tensor.set_requires_grad(true);
  return tensor;
}

Tensor full(const Shape& shape, Scalar value, TensorOptions options) {
  bool requires_grad = options.requires_grad;
  options.requires_grad = false;
  Tensor tensor = empty(shape, options);
  backend_for(options.device).fill(tensor, value);
  if (requires_grad) tensor.set_requires_grad(true);
  return tensor;
}

Tensor zeros(const Shape& shape, TensorOptions options) { return full(shape, 0, options); }
Tensor ones(const Shape& shape, TensorOptions options) { return full(shape, 1, options); }
Tensor empty_like(const Tensor& like) { return empty(like.shape(), {.dtype = like.dtype(), .device = like.device()}); }
Tensor zeros_like(const Tensor& like) { return zeros(like.shape(), {.dtype = like.dtype(), .device = like.device()}); }
Tensor ones_like(const Tensor& like) { return ones(like.shape(), {.dtype = like.dtype(), .device = like.device()}); }
Tensor full_like(const Tensor& like, Scalar value) {
  return full(like.shape(), value, {.dtype = like.dtype(), .device = like.device()});
}

Tensor scalar_tensor(Scalar value, DType dtype, Device device) {
  return full(Shape{}, value, {.dtype = dtype, .device = device});
}

Tensor arange(double start, double end, double step, TensorOptions options) {
  if (step == 0.0) fail("arange: step must be non-zero");
  if ((end - start) / step < 0) {
    fail("arange: end ", end, " cannot be reached from start ", start, " with step ", step);
  }
  auto count = static_cast<int64_t>(std::ceil((end - start) / step));
  Tensor tensor = empty(Shape{count}, {.dtype = options.dtype, .device = options.device});
  backend_for(options.device).arange(tensor, start, step);
  if (options.requires_grad) tensor.set_requires_grad(true);
  return tensor;
}

Tensor arange(int64_t end, TensorOptions options) { return arange(0.0, static_cast<double>(end), 1.0, options); }

Tensor eye(int64_t n, TensorOptions options) {
  Tensor tensor = zeros(Shape{n, n}, {.dtype = options.dtype, .device = options.device});
  // The diagonal is a strided view with stride n + 1.
  Tensor diagonal = as_strided(tensor, Shape{n}, Strides{n + 1}, 0);
  backend_for(options.device).fill(diagonal, 1);
  if (options.requires_grad) tensor.set_requires_grad(true);
  return tensor;
}

template <typename T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, TensorOptions options) {
  if (static_cast<int64_t>(values.size()) != shape.numel()) {
    fail("from_vector: ", values.size(), " values do not fill shape ", shape, " (", shape.numel(), " elements)");
  }
  Tensor host = empty(shape, {.dtype = dtype_of<T>::value});
  if constexpr (std::is_same_v<T, bool>) {
    auto* bytes = static_cast<bool*>(host.data());
    for (size_t i = 0; i < values.size(); ++i) bytes[i] = values[i];
  } else if (!values.empty()) {
    std::memcpy(host.data(), values.data(), values.size() * sizeof(T));
  }
  Tensor result = host.to(options.dtype).to(options.device);
  if (options.requires_grad) {
    if (result.is_same(host)) result = result.detach();
    result.set_requires_grad(true);
  }
  return result;
}
template Tensor from_vector<float>(const std::vector<float>&, const Shape&, TensorOptions);
template Tensor from_vector<double>(const std::vector<double>&, const Shape&, TensorOptions);
template Tensor from_vector<int32_t>(const std::vector<int32_t>&, const Shape&, TensorOptions);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, const Shape&, TensorOptions);
template Tensor from_vector<bool>(const std::vector<bool>&, const Shape&, TensorOptions);

namespace {
Tensor random_tensor(const char* op, RandomKind kind, const Shape& shape, double a, double b, TensorOptions options,
                     Generator* generator) {
  if (kind != RandomKind::Bernoulli && !is_floating(options.dtype)) {
    fail(op, ": expected a floating dtype, got ", options.dtype);
  }
  bool requires_grad = options.requires_grad;
  options.requires_grad = false;
  Tensor tensor = empty(shape, options);
  Generator& source = generator ? *generator : default_generator();
  backend_for(options.device).random(kind, source.take(tensor.numel()), a, b, tensor);
  if (requires_grad) tensor.set_requires_grad(true);
  return tensor;
}
}  // namespace

Tensor rand(const Shape& shape, TensorOptions options, Generator* generator) {
  return random_tensor("rand", RandomKind::Uniform, shape, 0.0, 1.0, options, generator);
}
Tensor randn(const Shape& shape, TensorOptions options, Generator* generator) {
  return random_tensor("randn", RandomKind::Normal, shape, 0.0, 1.0, options, generator);
}
Tensor uniform(const Shape& shape, double low, double high, TensorOptions options, Generator* generator) {
  if (!(low <= high)) fail("uniform: expected low <= high, got low ", low, " and high ", high);
  return random_tensor("uniform", RandomKind::Uniform, shape, low, high, options, generator);
}
Tensor normal(const Shape& shape, double mean, double std, TensorOptions options, Generator* generator) {
  if (!(std >= 0)) fail("normal: expected std >= 0, got ", std);
  return random_tensor("normal", RandomKind::Normal, shape, mean, std, options, generator);
}
Tensor bernoulli(const Shape& shape, double p, TensorOptions options, Generator* generator) {
  if (!(p >= 0 && p <= 1)) fail("bernoulli: expected a probability in [0, 1], got ", p);
  return random_tensor("bernoulli", RandomKind::Bernoulli, shape, p, 0.0, options, generator);
}

namespace {
Tensor& fill_random(Tensor& tensor, RandomKind kind, double a, double b, Generator* generator, const char* op) {
  check_inplace(tensor, op);
  Tensor values = random_tensor(op, kind, tensor.shape(), a, b, {.dtype = tensor.dtype(), .device = tensor.device()},
                                generator);
  backend_for(tensor.device()).copy(values, tensor);
  tensor.storage()->bump_version();
  return tensor;
}
}  // namespace

Tensor& uniform_(Tensor& tensor, double low, double high, Generator* generator) {
  return fill_random(tensor, RandomKind::Uniform, low, high, generator, "uniform_");
}
Tensor& normal_(Tensor& tensor, double mean, double std, Generator* generator) {
  return fill_random(tensor, RandomKind::Normal, mean, std, generator, "normal_");
}

}  // namespace dtrain
