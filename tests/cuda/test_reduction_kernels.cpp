// CPU-vs-CUDA parity of the reducing kernel-table entries: reduce, reduce_with_index, softmax and
// softmax_backward, over rows, columns, several dims, permuted inputs and long rows (the chunked
// path). Tolerances: tests/cuda/cuda_test_support.h.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/backend.h"
#include "tests/cuda/cuda_test_support.h"

using namespace dtrain;
using namespace dtrain::cuda_test;

namespace {

Backend& cpu_table() { return backend_for(Device::cpu()); }
Backend& gpu_table() { return backend_for(gpu()); }

const char* kind_name(ReductionKind kind) {
  switch (kind) {
    case ReductionKind::Sum: return "sum";
    case ReductionKind::Mean: return "mean";
    case ReductionKind::Max: return "max";
    default: return "min";
  }
}

// Runs reduce on both tables for input (CPU) and the same view of input on the device.
void check_reduce(ReductionKind kind, const Tensor& cpu_input, const Tensor& gpu_input, const std::vector<int64_t>& dims,
                  const std::string& what) {
  Shape kept = cpu_input.shape();
  for (int64_t d : dims) kept[d] = 1;
  const bool integer_sum = !is_floating(cpu_input.dtype()) && (kind == ReductionKind::Sum || kind == ReductionKind::Mean);
  const DType out_dtype = integer_sum ? kInt64 : cpu_input.dtype();
  Tensor cpu_out = empty(kept, {.dtype = out_dtype});
  Tensor gpu_out = empty(kept, {.dtype = out_dtype, .device = gpu()});
  cpu_table().reduce(kind, cpu_input, dims, cpu_out);
  gpu_table().reduce(kind, gpu_input, dims, gpu_out);
  std::string dims_text;
  for (int64_t d : dims) dims_text += std::to_string(d) + " ";
  require_match(gpu_out, cpu_out, std::string(kind_name(kind)) + " over dims " + dims_text + what);
}

}  // namespace

TEST_CASE("cuda kernels: reduce matches the CPU over any dims of contiguous and permuted inputs") {
  const std::vector<std::vector<int64_t>> dim_sets{{0, 1, 2}, {0}, {1}, {2}, {0, 2}, {1, 2}};
  for (DType dtype : {kFloat32, kFloat64, kBFloat16, kFloat16, kInt32, kInt64}) {
    Tensor input = is_floating(dtype) ? wavy({7, 33, 65}, dtype, 3.0) : integers({7, 33, 65}, -50, 50, dtype);
    Tensor gpu_input = input.to(gpu());
    for (ReductionKind kind : {ReductionKind::Sum, ReductionKind::Mean, ReductionKind::Max, ReductionKind::Min}) {
      if (kind == ReductionKind::Mean && !is_floating(dtype)) continue;  // mean is for floating tensors (ops check)
      for (const auto& dims : dim_sets) {
        check_reduce(kind, input, gpu_input, dims, std::string(dtype_name(dtype)));
        check_reduce(kind, input.permute({2, 0, 1}), gpu_input.permute({2, 0, 1}), dims, std::string(dtype_name(dtype)) + " permuted");
      }
    }
  }
}

TEST_CASE("cuda kernels: bool sums count into int64") {
  Tensor flags = gt(wavy({300, 7}), 0.0);
  check_reduce(ReductionKind::Sum, flags, flags.to(gpu()), {0}, "bool");
  check_reduce(ReductionKind::Sum, flags, flags.to(gpu()), {0, 1}, "bool");
}

TEST_CASE("cuda kernels: long reductions split into chunks match the CPU") {
  // A full sum of 3 million elements (chunked rows), a column sum of [100000, 3] (chunked columns)
  // and few long rows.
  Tensor big = wavy({3000000}, kFloat32, 1.0);
  for (ReductionKind kind : {ReductionKind::Sum, ReductionKind::Mean, ReductionKind::Max, ReductionKind::Min}) {
    check_reduce(kind, big, big.to(gpu()), {0}, "3M elements");
  }
  Tensor tall = wavy({100000, 3}, kFloat64, 1.0);
  check_reduce(ReductionKind::Sum, tall, tall.to(gpu()), {0}, "tall columns");
  Tensor rows = wavy({5, 200000}, kFloat32, 1.0);
  check_reduce(ReductionKind::Sum, rows, rows.to(gpu()), {1}, "5 long rows");
  // Integer sums are exact whatever the chunking.
  Tensor counts = integers({2000000}, -1000, 1000, kInt32);
  check_reduce(ReductionKind::Sum, counts, counts.to(gpu()), {0}, "int32 2M");
}

TEST_CASE("cuda kernels: reductions of NaN and of an empty range match the CPU") {
  Tensor with_nan = from_vector(std::vector<float>{1.0f, NAN, 3.0f, -2.0f, 5.0f, 0.5f}, {2, 3});
  for (ReductionKind kind : {ReductionKind::Sum, ReductionKind::Max, ReductionKind::Min}) {
    check_reduce(kind, with_nan, with_nan.to(gpu()), {1}, "with NaN");
    check_reduce(kind, with_nan, with_nan.to(gpu()), {0}, "with NaN");
  }
  Tensor empty_rows = zeros({3, 0});
  check_reduce(ReductionKind::Sum, empty_rows, empty_rows.to(gpu()), {1}, "empty rows");
  check_reduce(ReductionKind::Mean, empty_rows, empty_rows.to(gpu()), {1}, "empty rows (NaN)");
}

TEST_CASE("cuda kernels: max and min with index match the CPU, first extreme and NaN included") {
  for (DType dtype : {kFloat32, kFloat64, kBFloat16, kFloat16, kInt32, kInt64}) {
    // Few distinct values: many ties, so "the first extreme" is tested.
    Tensor input = integers({9, 300, 11}, -4, 4, dtype);
    for (int64_t dim : {0, 1, 2}) {
      for (bool permuted : {false, true}) {
        Tensor cpu_in = permuted ? strided_copy(input) : input;
        Tensor gpu_in = permuted ? strided_copy(input.to(gpu())) : input.to(gpu());
        Shape kept = input.shape();
        kept[dim] = 1;
        for (ReductionKind kind : {ReductionKind::Max, ReductionKind::Min}) {
          Tensor cpu_values = empty(kept, {.dtype = dtype}), cpu_indices = empty(kept, {.dtype = kInt64});
          Tensor gpu_values = empty(kept, {.dtype = dtype, .device = gpu()});
          Tensor gpu_indices = empty(kept, {.dtype = kInt64, .device = gpu()});
          cpu_table().reduce_with_index(kind, cpu_in, dim, cpu_values, cpu_indices);
          gpu_table().reduce_with_index(kind, gpu_in, dim, gpu_values, gpu_indices);
          const std::string what = std::string(kind_name(kind)) + " with index, dim " + std::to_string(dim) + " " +
                                   dtype_name(dtype) + (permuted ? " strided" : "");
          require_match(gpu_values, cpu_values, Tolerance{}, what + " values");
          require_match(gpu_indices, cpu_indices, Tolerance{}, what + " indices");
        }
      }
    }
  }
  Tensor with_nan = from_vector(std::vector<float>{1.0f, NAN, 7.0f, NAN, -1.0f, 2.0f, 2.0f, 0.0f}, {2, 4});
  for (ReductionKind kind : {ReductionKind::Max, ReductionKind::Min}) {
    Tensor cpu_values = empty({2, 1}), cpu_indices = empty({2, 1}, {.dtype = kInt64});
    Tensor gpu_values = empty({2, 1}, {.device = gpu()}), gpu_indices = empty({2, 1}, {.dtype = kInt64, .device = gpu()});
    cpu_table().reduce_with_index(kind, with_nan, 1, cpu_values, cpu_indices);
    gpu_table().reduce_with_index(kind, with_nan.to(gpu()), 1, gpu_values, gpu_indices);
    require_match(gpu_values, cpu_values, Tolerance{}, "NaN values");
    require_match(gpu_indices, cpu_indices, Tolerance{}, "NaN indices");
  }
}

TEST_CASE("cuda kernels: softmax and log_softmax forward and backward match the CPU") {
  for (DType dtype : floating_dtypes()) {
    for (const Shape& shape : {Shape{13, 77}, Shape{4, 5000}, Shape{6, 9, 33}}) {
      Tensor x = wavy(shape, dtype, 4.0);
      Tensor g = wavy(shape, dtype, 1.0, 0.9);
      for (int64_t dim = 0; dim < static_cast<int64_t>(shape.size()); ++dim) {
        for (bool log : {false, true}) {
          for (bool strided : {false, true}) {
            Tensor cpu_x = strided ? strided_copy(x) : x;
            Tensor gpu_x = strided ? strided_copy(x.to(gpu())) : x.to(gpu());
            Tensor cpu_y = empty(shape, {.dtype = dtype}), gpu_y = empty(shape, {.dtype = dtype, .device = gpu()});
            cpu_table().softmax(cpu_x, dim, log, cpu_y);
            gpu_table().softmax(gpu_x, dim, log, gpu_y);
            const std::string what = std::string(log ? "log_softmax" : "softmax") + " dim " + std::to_string(dim) + " of " +
                                     std::to_string(shape.numel()) + " " + dtype_name(dtype) + (strided ? " strided" : "");
            require_match(gpu_y, cpu_y, what);
            // Backward from the CPU's output on both, so only the backward kernel is compared.
            Tensor cpu_dx = empty(shape, {.dtype = dtype}), gpu_dx = empty(shape, {.dtype = dtype, .device = gpu()});
            cpu_table().softmax_backward(g, cpu_y, dim, log, cpu_dx);
            gpu_table().softmax_backward(g.to(gpu()), cpu_y.to(gpu()), dim, log, gpu_dx);
            Tolerance tolerance = tolerance_for(dtype);
            tolerance.absolute *= 4;  // g - total cancels: judge small results against the row's scale
            require_match(gpu_dx, cpu_dx, tolerance, what + " backward");
          }
        }
      }
    }
  }
}

namespace {

// The bytes of a tensor (any device) as the host sees them.
std::vector<unsigned char> bytes_of(const Tensor& tensor) {
  const Tensor host = tensor.to(Device::cpu()).contiguous();
  const auto* data = static_cast<const unsigned char*>(host.data());
  return std::vector<unsigned char>(data, data + host.numel() * static_cast<int64_t>(host.element_size()));
}

Tensor gpu_reduce(ReductionKind kind, const Tensor& gpu_input, const std::vector<int64_t>& dims) {
  Shape kept = gpu_input.shape();
  for (int64_t d : dims) kept[d] = 1;
  const bool integer_sum = !is_floating(gpu_input.dtype());
  Tensor out = empty(kept, {.dtype = integer_sum ? kInt64 : gpu_input.dtype(), .device = gpu()});
  gpu_table().reduce(kind, gpu_input, dims, out);
  return out;
}

}  // namespace

TEST_CASE("cuda kernels: reductions of every shape class (rows, columns, middle, all) match the CPU and repeat bit for bit") {
  struct Case {
    Shape shape;
    std::vector<int64_t> dims;
  };
  const std::vector<Case> cases{
      {{8192, 768}, {0}},  {{8192, 768}, {1}},   {{8192, 768}, {0, 1}}, {{8192, 3072}, {0}}, {{6, 1000, 100}, {1}},
      {{6, 1000, 100}, {0, 2}}, {{3, 200000}, {1}}, {{200000, 3}, {0}},  {{5, 7}, {0}},        {{5, 7}, {1}},
  };
  for (DType dtype : {kFloat32, kBFloat16, kFloat64, kInt32}) {
    for (const Case& c : cases) {
      const Tensor input = is_floating(dtype) ? wavy(c.shape, dtype, 3.0) : integers(c.shape, -1000, 1000, dtype);
      const Tensor on_gpu = input.to(gpu());
      std::string what = std::string(dtype_name(dtype)) + " shape " + c.shape.str();
      check_reduce(ReductionKind::Sum, input, on_gpu, c.dims, what);
      if (is_floating(dtype)) check_reduce(ReductionKind::Max, input, on_gpu, c.dims, what);
      const Tensor first = gpu_reduce(ReductionKind::Sum, on_gpu, c.dims);
      const Tensor second = gpu_reduce(ReductionKind::Sum, on_gpu, c.dims);
      INFO("sum of " << what << " twice");
      REQUIRE(bytes_of(first) == bytes_of(second));
    }
  }
}

TEST_CASE("cuda kernels: a sum's bits do not depend on the input's alignment (16-byte loads or single ones)") {
  // The same values at an address 16-byte aligned and at one element past it: the second takes the
  // kernels' element-by-element loads, the first their vector loads. The order of the additions is
  // the plan's either way, so the bits agree.
  for (DType dtype : {kFloat32, kBFloat16}) {
    for (const auto& [shape, dim] : {std::pair<Shape, int64_t>{{8192, 768}, 0}, {{8192, 768}, 1}, {{1000, 3072}, 0}}) {
      const Tensor values = wavy(shape, dtype, 5.0).to(gpu());
      Tensor buffer = empty({shape.numel() + 1}, {.dtype = dtype, .device = gpu()});
      Tensor shifted = buffer.slice(0, 1, shape.numel() + 1).view(shape);
      shifted.copy_(values);
      INFO(dtype_name(dtype) << " " << shape << " over dim " << dim);
      REQUIRE(bytes_of(gpu_reduce(ReductionKind::Sum, values, {dim})) == bytes_of(gpu_reduce(ReductionKind::Sum, shifted, {dim})));
    }
  }
}
