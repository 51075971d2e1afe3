#pragma once
// Tensors made from nothing: constants, ranges, values from a vector, random numbers.
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"

namespace dtrain {

struct TensorOptions {
  DType dtype = kFloat32;
  Device device = Device::cpu();
  bool requires_grad = false;
};

Tensor empty(const Shape& shape, TensorOptions options = {});
Tensor zeros(const Shape& shape, TensorOptions options = {});
Tensor ones(const Shape& shape, TensorOptions options = {});
Tensor full(const Shape& shape, Scalar value, TensorOptions options = {});
Tensor empty_like(const Tensor& like);
Tensor zeros_like(const Tensor& like);
Tensor ones_like(const Tensor& like);
Tensor full_like(const Tensor& like, Scalar value);
// A 0-d tensor holding value.
Tensor scalar_tensor(Scalar value, DType dtype = kFloat64, Device device = Device::cpu());
// start, start + step, ... below end (as torch.arange); dtype Int64 by default.
Tensor arange(double start, double end, double step = 1.0, TensorOptions options = {.dtype = kInt64});
Tensor arange(int64_t end, TensorOptions options = {.dtype = kInt64});
Tensor eye(int64_t n, TensorOptions options = {});

// Values in row-major order; the shape must hold exactly values.size() elements.
template <typename T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, TensorOptions options = {.dtype = dtype_of<T>::value});
template <typename T>
Tensor from_vector(const std::vector<T>& values) {
  return from_vector(values, Shape{static_cast<int64_t>(values.size())});
}
inline Tensor tensor(std::initializer_list<float> values, const Shape& shape) {
  return from_vector(std::vector<float>(values), shape, {.dtype = kFloat32});
}

// Random numbers from a counter-based Philox stream: the same seed gives the same numbers on
// any device and thread count. Without a generator the default one (manual_seed) is used.
Tensor rand(const Shape& shape, TensorOptions options = {}, Generator* generator = nullptr);   // U[0, 1)
Tensor randn(const Shape& shape, TensorOptions options = {}, Generator* generator = nullptr);  // N(0, 1)
Tensor uniform(const Shape& shape, double low, double high, TensorOptions options = {}, Generator* generator = nullptr);
Tensor normal(const Shape& shape, double mean, double std, TensorOptions options = {}, Generator* generator = nullptr);
// 1 with probability p, else 0, in options.dtype.
Tensor bernoulli(const Shape& shape, double p, TensorOptions options = {}, Generator* generator = nullptr);

// In-place random fills (initialisers use them).
Tensor& uniform_(Tensor& tensor, double low, double high, Generator* generator = nullptr);
Tensor& normal_(Tensor& tensor, double mean, double std, Generator* generator = nullptr);

}  // namespace dtrain
