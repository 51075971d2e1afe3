// CPU-vs-CUDA parity of the elementwise kernel-table entries (fill, arange, copy, binary, unary,
// where), called directly on both tables with the same inputs, per dtype, on contiguous,
// broadcast and strided operands. Tolerances: tests/cuda/cuda_test_support.h.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/backend.h"
#include "tests/cuda/cuda_test_support.h"

using namespace dtrain;
using namespace dtrain::cuda_test;
using Catch::Contains;

namespace {

Backend& cpu_table() { return backend_for(Device::cpu()); }
Backend& gpu_table() { return backend_for(gpu()); }

// Runs fill on a CPU and a CUDA tensor of one layout and compares.
void check_fill(const Shape& shape, DType dtype, Scalar value, bool strided) {
  Tensor cpu_out = zeros(shape, {.dtype = dtype});
  Tensor gpu_out = zeros(shape, {.dtype = dtype, .device = gpu()});
  Tensor cpu_view = strided ? cpu_out.transpose(0, 1) : cpu_out;
  Tensor gpu_view = strided ? gpu_out.transpose(0, 1) : gpu_out;
  if (strided) {  // every other column: a view with gaps
    cpu_view = cpu_view.slice(1, 0, cpu_view.size(1), 2);
    gpu_view = gpu_view.slice(1, 0, gpu_view.size(1), 2);
  }
  cpu_table().fill(cpu_view, value);
  gpu_table().fill(gpu_view, value);
  require_match(gpu_out, cpu_out, Tolerance{}, std::string("fill ") + dtype_name(dtype) + (strided ? " strided" : ""));
}

}  // namespace

TEST_CASE("cuda kernels: fill matches the CPU for every dtype, contiguous and strided") {
  for (DType dtype : all_dtypes()) {
    check_fill({37, 29}, dtype, 2.5, false);
    check_fill({37, 29}, dtype, -3, true);
    check_fill({1000, 3}, dtype, 1, false);
  }
}

TEST_CASE("cuda kernels: arange matches the CPU") {
  for (DType dtype : numeric_dtypes()) {
    for (auto [start, step] : {std::pair{0.0, 1.0}, std::pair{-7.0, 3.0}, std::pair{-2.0, 0.25}}) {
      Tensor cpu_out = empty({1001}, {.dtype = dtype});
      Tensor gpu_out = empty({1001}, {.dtype = dtype, .device = gpu()});
      cpu_table().arange(cpu_out, start, step);
      gpu_table().arange(gpu_out, start, step);
      // Integral steps are exact in every dtype; a quarter step is exact in binary too.
      require_match(gpu_out, cpu_out, Tolerance{}, std::string("arange ") + dtype_name(dtype));
    }
  }
}

TEST_CASE("cuda kernels: copy converts between every pair of dtypes as the CPU does") {
  // Integers, halves and values that round differently in bf16 and f16.
  Tensor source_values = add(mul(integers({23, 31}, -40, 40, kFloat64), 0.37), 0.0);
  for (DType from : all_dtypes()) {
    Tensor cpu_source = source_values.to(from);
    Tensor gpu_source = cpu_source.to(gpu());
    for (DType to : all_dtypes()) {
      for (bool strided : {false, true}) {
        Tensor cpu_in = strided ? strided_copy(cpu_source) : cpu_source;
        Tensor gpu_in = strided ? strided_copy(gpu_source) : gpu_source;
        Tensor cpu_out = empty(cpu_in.shape(), {.dtype = to});
        Tensor gpu_out = empty(gpu_in.shape(), {.dtype = to, .device = gpu()});
        cpu_table().copy(cpu_in, cpu_out);
        gpu_table().copy(gpu_in, gpu_out);
        require_match(gpu_out, cpu_out, Tolerance{},
                      std::string("copy ") + dtype_name(from) + " -> " + dtype_name(to) + (strided ? " strided" : ""));
      }
    }
  }
}

TEST_CASE("cuda kernels: copy into a strided destination") {
  Tensor cpu_source = wavy({40, 50});
  Tensor cpu_out = zeros({50, 40});
  Tensor gpu_out = zeros({50, 40}, {.device = gpu()});
  Tensor cpu_view = cpu_out.t(), gpu_view = gpu_out.t();
  cpu_table().copy(cpu_source, cpu_view);
  gpu_table().copy(cpu_source.to(gpu()), gpu_view);
  require_match(gpu_out, cpu_out, Tolerance{}, "copy into a transposed view");
}

TEST_CASE("cuda kernels: host transfers round-trip every dtype bit for bit") {
  for (DType dtype : all_dtypes()) {
    Tensor host = wavy({3, 1000}, kFloat64, 50.0).to(dtype);
    Tensor back = host.to(gpu()).to(Device::cpu());
    REQUIRE(back.device().is_cpu());
    require_match(host.to(gpu()), back, Tolerance{}, std::string("round trip ") + dtype_name(dtype));
    CHECK(equal(back, host));
  }
}

TEST_CASE("cuda kernels: large transfers go through the pinned staging buffers intact") {
  // 28 MiB: several 8 MiB staging chunks and a partial one, both directions.
  const int64_t count = 7 * 1024 * 1024 + 12345;
  Tensor host = arange(count, {.dtype = kFloat32});
  Tensor device_copy = host.to(gpu());
  Tensor back = device_copy.to(Device::cpu());
  CHECK(equal(back, host));
  // A value changed on the device comes back changed: the copy really went through the device.
  Tensor doubled = mul(device_copy, 2.0).to(Device::cpu());
  CHECK(doubled.to_vector<float>()[count - 1] == 2.0f * static_cast<float>(count - 1));
}

namespace {

// The operand layouts a binary kernel meets, made from two [33, 65] tensors by views, so that the
// same views on the device keep their strides (moving a view to the device would copy it).
struct Layout {
  const char* name;
  std::function<std::pair<Tensor, Tensor>(const Tensor&, const Tensor&)> make;
};

const std::vector<Layout>& binary_layouts() {
  static const std::vector<Layout> layouts{
      {"contiguous", [](const Tensor& a, const Tensor& b) { return std::pair{a, b}; }},
      {"row against column", [](const Tensor& a, const Tensor& b) {
         return std::pair{a.slice(0, 0, 1).expand({33, 65}), b.slice(1, 0, 1).expand({33, 65})};
       }},
      {"one value", [](const Tensor& a, const Tensor& b) {
         return std::pair{a, b.slice(0, 3, 4).slice(1, 5, 6).expand({33, 65})};
       }},
      {"strided", [](const Tensor& a, const Tensor& b) { return std::pair{strided_copy(a), b.slice(1, 0, 65)}; }},
      {"offset by one element", [](const Tensor& a, const Tensor& b) {
         // Unaligned for 128-bit loads: the kernel must take its strided path.
         return std::pair{a.flatten().slice(0, 1, 1 + 32 * 65).view({32, 65}), b.slice(0, 1, 33)};
       }},
  };
  return layouts;
}

// Binary op inputs per dtype: positive bases (pow), nonzero divisors, small integers (exact int pow).
std::pair<Tensor, Tensor> binary_inputs(DType dtype) {
  if (is_floating(dtype)) {
    return {add(wavy({33, 65}, kFloat64, 1.5), 2.0).to(dtype), add(wavy({33, 65}, kFloat64, 1.0, 1.1), 1.5).to(dtype)};
  }
  if (dtype == kBool) return {gt(wavy({33, 65}), 0.0), gt(wavy({33, 65}, kFloat32, 1.0, 0.9), 0.0)};
  return {integers({33, 65}, 0, 5, dtype, 1), integers({33, 65}, 1, 4, dtype, 2)};
}

void check_binary(BinaryOp op, DType dtype) {
  auto [a, b] = binary_inputs(dtype);
  Tensor gpu_a = a.to(gpu()), gpu_b = b.to(gpu());
  const DType out_dtype = is_comparison(op) ? kBool : dtype;
  for (const Layout& layout : binary_layouts()) {
    auto [cpu_left, cpu_right] = layout.make(a, b);
    auto [gpu_left, gpu_right] = layout.make(gpu_a, gpu_b);
    Tensor cpu_out = empty(cpu_left.shape(), {.dtype = out_dtype});
    Tensor gpu_out = empty(gpu_left.shape(), {.dtype = out_dtype, .device = gpu()});
    cpu_table().binary(op, cpu_left, cpu_right, cpu_out);
    gpu_table().binary(op, gpu_left, gpu_right, gpu_out);
    require_match(gpu_out, cpu_out, std::string(binary_op_name(op)) + " " + dtype_name(dtype) + " " + layout.name);
  }
}

}  // namespace

TEST_CASE("cuda kernels: binary arithmetic matches the CPU for every dtype and layout") {
  for (BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Pow, BinaryOp::Maximum,
                      BinaryOp::Minimum}) {
    for (DType dtype : numeric_dtypes()) check_binary(op, dtype);
  }
}

TEST_CASE("cuda kernels: comparisons match the CPU for every dtype, bool included") {
  for (BinaryOp op : {BinaryOp::Eq, BinaryOp::Ne, BinaryOp::Lt, BinaryOp::Le, BinaryOp::Gt, BinaryOp::Ge}) {
    for (DType dtype : all_dtypes()) check_binary(op, dtype);
  }
}

TEST_CASE("cuda kernels: activation backward helpers match the CPU") {
  for (BinaryOp op : {BinaryOp::ReluBackward, BinaryOp::GeluTanhBackward, BinaryOp::GeluErfBackward,
                      BinaryOp::TanhBackward, BinaryOp::SigmoidBackward}) {
    for (DType dtype : floating_dtypes()) check_binary(op, dtype);
  }
}

TEST_CASE("cuda kernels: maximum and minimum propagate NaN as the CPU does") {
  Tensor a = from_vector(std::vector<float>{1.0f, NAN, 3.0f, NAN}, {4});
  Tensor b = from_vector(std::vector<float>{NAN, 2.0f, 1.0f, NAN}, {4});
  for (BinaryOp op : {BinaryOp::Maximum, BinaryOp::Minimum}) {
    Tensor cpu_out = empty({4}), gpu_out = empty({4}, {.device = gpu()});
    cpu_table().binary(op, a, b, cpu_out);
    gpu_table().binary(op, a.to(gpu()), b.to(gpu()), gpu_out);
    require_match(gpu_out, cpu_out, binary_op_name(op));
  }
}

TEST_CASE("cuda kernels: integer division by zero raises as on the CPU") {
  Tensor a = from_vector(std::vector<int64_t>{4, 5, 6}).to(gpu());
  Tensor b = from_vector(std::vector<int64_t>{2, 0, 3}).to(gpu());
  Tensor out = empty({3}, {.dtype = kInt64, .device = gpu()});
  CHECK_THROWS_WITH(gpu_table().binary(BinaryOp::Div, a, b, out), Contains("div: integer division by zero"));
  Tensor fine = from_vector(std::vector<int64_t>{2, 1, 3}).to(gpu());
  gpu_table().binary(BinaryOp::Div, a, fine, out);
  CHECK(out.to_vector<int64_t>() == std::vector<int64_t>{2, 5, 2});
}

TEST_CASE("cuda kernels: unary ops match the CPU for every dtype") {
  const std::vector<UnaryOp> signed_ops{UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Sign, UnaryOp::Relu, UnaryOp::PowScalar};
  const std::vector<UnaryOp> floating_ops{UnaryOp::Exp,     UnaryOp::Log,        UnaryOp::Sqrt,     UnaryOp::Rsqrt,
                                          UnaryOp::Reciprocal, UnaryOp::Tanh,   UnaryOp::Sigmoid, UnaryOp::GeluTanh,
                                          UnaryOp::GeluErf, UnaryOp::Sin,        UnaryOp::Cos};
  for (DType dtype : numeric_dtypes()) {
    const bool floating = is_floating(dtype);
    Tensor signed_input = floating ? wavy({41, 23}, dtype, 3.0) : integers({41, 23}, -6, 7, dtype);
    Tensor positive_input = floating ? add(wavy({41, 23}, kFloat64, 2.0), 2.5).to(dtype) : Tensor();
    std::vector<UnaryOp> ops = signed_ops;
    if (floating) ops.insert(ops.end(), floating_ops.begin(), floating_ops.end());
    for (UnaryOp op : ops) {
      const bool needs_positive = op == UnaryOp::Log || op == UnaryOp::Sqrt || op == UnaryOp::Rsqrt;
      // A square (its own fast path) and a real power, on positive bases for the floats.
      const std::vector<double> parameters = op != UnaryOp::PowScalar ? std::vector<double>{0.0}
                                             : floating               ? std::vector<double>{2.0, 2.5}
                                                                      : std::vector<double>{2.0, 3.0};
      for (double parameter : parameters) {
        Tensor input = needs_positive || (op == UnaryOp::PowScalar && floating) ? positive_input : signed_input;
        for (bool strided : {false, true}) {
          Tensor cpu_in = strided ? strided_copy(input) : input;
          Tensor gpu_in = strided ? strided_copy(input.to(gpu())) : input.to(gpu());
          Tensor cpu_out = empty(input.shape(), {.dtype = dtype});
          Tensor gpu_out = empty(input.shape(), {.dtype = dtype, .device = gpu()});
          cpu_table().unary(op, cpu_in, cpu_out, parameter);
          gpu_table().unary(op, gpu_in, gpu_out, parameter);
          require_match(gpu_out, cpu_out, std::string(unary_op_name(op)) + " " + dtype_name(dtype) + (strided ? " strided" : ""));
        }
      }
    }
  }
}

TEST_CASE("cuda kernels: unary ops that need a floating dtype raise for integers") {
  Tensor a = integers({4}, 0, 3, kInt64).to(gpu());
  Tensor out = empty({4}, {.dtype = kInt64, .device = gpu()});
  CHECK_THROWS_WITH(gpu_table().unary(UnaryOp::Exp, a, out, 0.0), Contains("unary kernel 'exp' is not defined for dtype int64"));
}

TEST_CASE("cuda kernels: where matches the CPU with broadcast operands") {
  for (DType dtype : all_dtypes()) {
    Tensor condition = gt(wavy({17, 40}), 0.5);
    Tensor a = wavy({17, 40}, kFloat64, 4.0, 0.1).to(dtype);
    Tensor b = wavy({1, 40}, kFloat64, 4.0, 0.7).to(dtype);
    Tensor cpu_out = empty({17, 40}, {.dtype = dtype});
    Tensor gpu_out = empty({17, 40}, {.dtype = dtype, .device = gpu()});
    cpu_table().where(condition, a, b.expand({17, 40}), cpu_out);
    gpu_table().where(condition.to(gpu()), a.to(gpu()), b.to(gpu()).expand({17, 40}), gpu_out);
    require_match(gpu_out, cpu_out, Tolerance{}, std::string("where ") + dtype_name(dtype));
    // A transposed condition takes the strided path.
    Tensor cpu_strided = empty({17, 40}, {.dtype = dtype});
    Tensor gpu_strided = empty({17, 40}, {.dtype = dtype, .device = gpu()});
    cpu_table().where(strided_copy(condition), a, b.expand({17, 40}), cpu_strided);
    gpu_table().where(strided_copy(condition.to(gpu())), a.to(gpu()), b.to(gpu()).expand({17, 40}), gpu_strided);
    require_match(gpu_strided, cpu_strided, Tolerance{}, std::string("where strided ") + dtype_name(dtype));
  }
}
