// CPU-vs-CUDA parity of the index kernels (gather, scatter_add, index_select, index_add, with the
// CPU's out-of-range messages), of random numbers (the same numbers for the same generator state)
// and of matmul through cuBLAS (layouts, batches, broadcasts, dtypes, the TF32 switch).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/backend.h"
#include "tests/cuda/cuda_test_support.h"

using namespace dtrain;
using namespace dtrain::cuda_test;
using Catch::Contains;

namespace {

Backend& cpu_table() { return backend_for(Device::cpu()); }
Backend& gpu_table() { return backend_for(gpu()); }

// The message a kernel-table call raises ("" if none).
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

}  // namespace

TEST_CASE("cuda kernels: gather and scatter_add match the CPU along each dim") {
  for (DType dtype : {kFloat32, kFloat64, kBFloat16, kInt32, kInt64}) {
    Tensor input = is_floating(dtype) ? wavy({12, 17}, dtype) : integers({12, 17}, -9, 9, dtype);
    for (int64_t dim : {0, 1}) {
      Tensor index = integers({12, 17}, 0, input.size(dim), kInt64, static_cast<uint64_t>(dim)).slice(1 - dim, 0, 9);
      Tensor cpu_out = empty(index.shape(), {.dtype = dtype});
      Tensor gpu_out = empty(index.shape(), {.dtype = dtype, .device = gpu()});
      cpu_table().gather(input, dim, index, cpu_out);
      gpu_table().gather(input.to(gpu()), dim, index.to(gpu()), gpu_out);
      require_match(gpu_out, cpu_out, Tolerance{}, std::string("gather dim ") + std::to_string(dim) + " " + dtype_name(dtype));

      // Repeated indices add up in index order on both devices.
      Tensor source = is_floating(dtype) ? wavy(index.shape(), dtype, 1.0, 0.4) : integers(index.shape(), -5, 5, dtype, 7);
      Tensor cpu_target = input.clone(), gpu_target = input.to(gpu());
      cpu_table().scatter_add(cpu_target, dim, index, source);
      gpu_table().scatter_add(gpu_target, dim, index.to(gpu()), source.to(gpu()));
      require_match(gpu_target, cpu_target, std::string("scatter_add dim ") + std::to_string(dim) + " " + dtype_name(dtype));
    }
  }
}

TEST_CASE("cuda kernels: index_select and index_add match the CPU with int32 and int64 indices") {
  for (DType dtype : {kFloat32, kFloat64, kFloat16, kInt64, kBool}) {
    Tensor input = dtype == kBool ? gt(wavy({10, 6, 7}), 0.0) : wavy({10, 6, 7}, kFloat64, 5.0).to(dtype);
    for (DType index_dtype : {kInt64, kInt32}) {
      for (int64_t dim : {0, 1, 2}) {
        Tensor index = integers({13}, 0, input.size(dim), index_dtype, 3);  // repeats some positions
        Shape selected = input.shape();
        selected[dim] = 13;
        Tensor cpu_out = empty(selected, {.dtype = dtype});
        Tensor gpu_out = empty(selected, {.dtype = dtype, .device = gpu()});
        cpu_table().index_select(input, dim, index, cpu_out);
        gpu_table().index_select(input.to(gpu()), dim, index.to(gpu()), gpu_out);
        const std::string what = std::string(" dim ") + std::to_string(dim) + " " + dtype_name(dtype) + " index " + dtype_name(index_dtype);
        require_match(gpu_out, cpu_out, Tolerance{}, "index_select" + what);
        if (dtype == kBool) continue;
        Tensor source = wavy(selected, kFloat64, 1.0, 1.3).to(dtype);
        Tensor cpu_target = input.clone(), gpu_target = input.to(gpu());
        cpu_table().index_add(cpu_target, dim, index, source, IndexBounds::Check);
        gpu_table().index_add(gpu_target, dim, index.to(gpu()), source.to(gpu()), IndexBounds::Check);
        require_match(gpu_target, cpu_target, "index_add" + what);
      }
    }
  }
}

TEST_CASE("cuda kernels: an index out of range raises the CPU's message") {
  Tensor input = wavy({4, 5});
  Tensor bad = from_vector(std::vector<int64_t>{0, 5, 1}, {1, 3});
  Tensor cpu_out = empty({1, 3}), gpu_out = empty({1, 3}, {.device = gpu()});
  const std::string cpu_gather = error_of([&] { cpu_table().gather(input, 1, bad, cpu_out); });
  const std::string gpu_gather = error_of([&] { gpu_table().gather(input.to(gpu()), 1, bad.to(gpu()), gpu_out); });
  CHECK_THAT(gpu_gather, Contains("gather: index 5 is out of bounds for dimension 1 with size 5"));
  CHECK(gpu_gather == cpu_gather);

  Tensor negative = from_vector(std::vector<int64_t>{2, -1});
  Tensor selected = empty({2, 5}, {.device = gpu()});
  const std::string select_error = error_of([&] { gpu_table().index_select(input.to(gpu()), 0, negative.to(gpu()), selected); });
  CHECK_THAT(select_error, Contains("index_select: index -1 is out of bounds for dimension 0 with size 4"));

  Tensor target = zeros({4, 5}, {.device = gpu()});
  const std::string add_error =
      error_of([&] { gpu_table().index_add(target, 0, from_vector(std::vector<int64_t>{4}).to(gpu()), ones({1, 5}, {.device = gpu()}), IndexBounds::Check); });
  CHECK_THAT(add_error, Contains("index_add: index 4 is out of bounds for dimension 0 with size 4"));
  const std::string scatter_error =
      error_of([&] { gpu_table().scatter_add(target, 1, bad.to(gpu()), ones({1, 3}, {.device = gpu()})); });
  CHECK_THAT(scatter_error, Contains("scatter_add: index 5 is out of bounds for dimension 1 with size 5"));
}

TEST_CASE("cuda kernels: random numbers are the CPU's for the same generator state") {
  struct Draw {
    const char* name;
    std::function<Tensor(Device, DType, Generator&)> make;
  };
  const Shape shape{1001, 37};  // odd: the last Philox pair is half used
  const std::vector<Draw> draws{
      {"rand", [&](Device d, DType t, Generator& g) { return rand(shape, {.dtype = t, .device = d}, &g); }},
      {"uniform", [&](Device d, DType t, Generator& g) { return uniform(shape, -0.37, 2.9, {.dtype = t, .device = d}, &g); }},
      {"randn", [&](Device d, DType t, Generator& g) { return randn(shape, {.dtype = t, .device = d}, &g); }},
      {"normal", [&](Device d, DType t, Generator& g) { return normal(shape, 0.25, 1.7, {.dtype = t, .device = d}, &g); }},
      {"bernoulli", [&](Device d, DType t, Generator& g) { return bernoulli(shape, 0.3, {.dtype = t, .device = d}, &g); }},
  };
  for (const Draw& draw : draws) {
    for (DType dtype : {kFloat32, kFloat64, kBFloat16, kFloat16}) {
      Generator cpu_generator(20240611), gpu_generator(20240611);
      cpu_generator.set_offset(12345);
      gpu_generator.set_offset(12345);
      Tensor cpu_values = draw.make(Device::cpu(), dtype, cpu_generator);
      Tensor gpu_values = draw.make(gpu(), dtype, gpu_generator);
      CHECK(cpu_generator.offset() == gpu_generator.offset());
      // Uniform and Bernoulli values are integer arithmetic plus one fma: bit-identical. Normal
      // values pass through log, sin and cos: identical once rounded to 32 bits or fewer, within
      // a few ulp in float64.
      const bool normal = std::string(draw.name) == "randn" || std::string(draw.name) == "normal";
      Tolerance tolerance = normal && dtype == kFloat64 ? Tolerance{1e-14, 1e-14} : Tolerance{};
      require_match(gpu_values, cpu_values, tolerance, std::string(draw.name) + " " + dtype_name(dtype));
    }
  }
  // The default generator: manual_seed gives the same stream on both devices.
  manual_seed(7);
  Tensor cpu_first = randn({5000});
  manual_seed(7);
  Tensor gpu_first = randn({5000}, {.device = gpu()});
  require_match(gpu_first, cpu_first, Tolerance{}, "randn from manual_seed");
}

namespace {

// Runs matmul on both tables for operands made by the same view function on each device.
void check_matmul(const std::string& what, DType dtype, const Shape& a_shape, const Shape& b_shape,
                  const std::function<Tensor(const Tensor&)>& view_a, const std::function<Tensor(const Tensor&)>& view_b,
                  Tolerance tolerance) {
  Tensor a = wavy(a_shape, dtype, 1.0, 0.2), b = wavy(b_shape, dtype, 1.0, 1.7);
  Tensor cpu_a = view_a(a), cpu_b = view_b(b);
  Tensor gpu_a = view_a(a.to(gpu())), gpu_b = view_b(b.to(gpu()));
  Shape batch_a(cpu_a.shape().begin(), cpu_a.shape().end() - 2), batch_b(cpu_b.shape().begin(), cpu_b.shape().end() - 2);
  Shape batch = broadcast_shapes(batch_a, batch_b, "test");
  Shape a_full = batch, b_full = batch, out_shape = batch;
  a_full.insert(a_full.end(), {cpu_a.size(-2), cpu_a.size(-1)});
  b_full.insert(b_full.end(), {cpu_b.size(-2), cpu_b.size(-1)});
  out_shape.insert(out_shape.end(), {cpu_a.size(-2), cpu_b.size(-1)});
  Tensor cpu_out = empty(out_shape, {.dtype = dtype}), gpu_out = empty(out_shape, {.dtype = dtype, .device = gpu()});
  cpu_table().matmul(cpu_a.expand(a_full), cpu_b.expand(b_full), cpu_out);
  gpu_table().matmul(gpu_a.expand(a_full), gpu_b.expand(b_full), gpu_out);
  require_match(gpu_out, cpu_out, tolerance, what + " " + dtype_name(dtype));
}

Tensor same(const Tensor& x) { return x; }

}  // namespace

TEST_CASE("cuda kernels: matmul matches the CPU for every layout and batch form") {
  auto transposed = [](const Tensor& x) { return x.transpose(-1, -2); };
  auto every_other = [](const Tensor& x) { return x.slice(-1, 0, x.size(-1), 2).slice(-2, 0, x.size(-2), 2); };
  auto swap_batch = [](const Tensor& x) { return x.transpose(0, 1); };  // batch offsets no longer evenly spaced
  for (DType dtype : floating_dtypes()) {
    // Products accumulate K terms in a different order than Eigen: tolerances grow with sqrt(K).
    Tolerance tolerance = tolerance_for(dtype);
    if (dtype == kFloat32) tolerance = {2e-5, 5e-5};
    if (dtype == kBFloat16 || dtype == kFloat16) tolerance = {2e-2, 2e-2};
    check_matmul("plain [37, 53] @ [53, 29]", dtype, {37, 53}, {53, 29}, same, same, tolerance);
    check_matmul("transposed a", dtype, {53, 37}, {53, 29}, transposed, same, tolerance);
    check_matmul("transposed b", dtype, {37, 53}, {29, 53}, same, transposed, tolerance);
    check_matmul("both transposed", dtype, {53, 37}, {29, 53}, transposed, transposed, tolerance);
    check_matmul("every other element (copied first)", dtype, {74, 106}, {106, 58}, every_other, every_other, tolerance);
    check_matmul("strided batch", dtype, {5, 37, 53}, {5, 53, 29}, same, same, tolerance);
    check_matmul("batch against one matrix (folded)", dtype, {5, 37, 53}, {53, 29}, same, same, tolerance);
    check_matmul("one matrix against a batch", dtype, {37, 53}, {5, 53, 29}, same, same, tolerance);
    check_matmul("broadcast batch dims", dtype, {3, 1, 37, 53}, {1, 4, 53, 29}, same, same, tolerance);
    check_matmul("pointer-array batch", dtype, {3, 4, 37, 53}, {4, 3, 53, 29}, swap_batch, same, tolerance);
    check_matmul("vector shapes", dtype, {1, 53}, {53, 1}, same, same, tolerance);
  }
}

TEST_CASE("cuda kernels: matmul with an empty inner dim gives zeros") {
  Tensor out = full({3, 4}, 7.0, {.device = gpu()});
  gpu_table().matmul(zeros({3, 0}, {.device = gpu()}), zeros({0, 4}, {.device = gpu()}), out);
  require_match(out, zeros({3, 4}), Tolerance{}, "K = 0");
}

TEST_CASE("cuda kernels: TF32 is off by default and, when allowed, stays close") {
  CHECK_FALSE(cuda::allow_tf32());
  Tensor a = wavy({256, 512}), b = wavy({512, 128}, kFloat32, 1.0, 0.9);
  Tensor exact = matmul(a, b);
  cuda::set_allow_tf32(true);
  CHECK(cuda::allow_tf32());
  Tensor fast = matmul(a.to(gpu()), b.to(gpu()));
  cuda::set_allow_tf32(false);
  // TF32 keeps 10 mantissa bits of each input: products are off by about 1e-3 relative, sums of
  // 512 of them by a few 1e-3 absolute (1e-1 leaves room for the largest of 32768 outputs).
  require_match(fast, exact, Tolerance{5e-3, 1e-1}, "TF32 matmul");
  Tensor strict = matmul(a.to(gpu()), b.to(gpu()));
  // Two float32 summation orders over 512 terms of up to 20 in size: differences near 1e-5.
  require_match(strict, exact, Tolerance{1e-4, 2e-4}, "float32 matmul after TF32 is switched off");
}
