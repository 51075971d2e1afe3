// Reductions against naive loops written here over std::vector, on contiguous and strided inputs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <utility>
#include <vector>

#include "core/core.h"

using namespace dtrain;
using Catch::Contains;

namespace {

// Row-major multi-index walk: calls fn(flat index, coordinates) for every element of shape.
void for_each_index(const Shape& shape, const std::function<void(int64_t, const std::vector<int64_t>&)>& fn) {
  std::vector<int64_t> coords(shape.size(), 0);
  for (int64_t flat = 0; flat < shape.numel(); ++flat) {
    fn(flat, coords);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++coords[d] < shape[d]) break;
      coords[d] = 0;
    }
  }
}

// The keepdim-shaped reference of combining values (row-major, of shape) over dims.
std::vector<double> reference_reduce(const std::vector<double>& values, const Shape& shape, const std::vector<int64_t>& dims,
                                     double identity, const std::function<double(double, double)>& combine) {
  Shape kept = shape;
  for (int64_t d : dims) kept[d] = 1;
  std::vector<double> out(static_cast<size_t>(kept.numel()), identity);
  Strides kept_strides = contiguous_strides(kept);
  for_each_index(shape, [&](int64_t flat, const std::vector<int64_t>& coords) {
    int64_t o = 0;
    for (size_t d = 0; d < shape.size(); ++d) o += (kept[d] == 1 ? 0 : coords[d]) * kept_strides[d];
    out[o] = combine(out[o], values[flat]);
  });
  return out;
}

std::vector<double> reference_sum(const std::vector<double>& values, const Shape& shape, const std::vector<int64_t>& dims) {
  return reference_reduce(values, shape, dims, 0.0, [](double a, double b) { return a + b; });
}

// Deterministic, irregular values (no two equal, mixed signs).
std::vector<double> wavy(int64_t count) {
  std::vector<double> values(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) values[i] = std::sin(0.37 * static_cast<double>(i) + 0.1) * 3.0 + 0.01 * static_cast<double>(i % 7);
  return values;
}

void require_close(const std::vector<double>& got, const std::vector<double>& expected, double tolerance) {
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    REQUIRE(got[i] == Approx(expected[i]).margin(tolerance).epsilon(tolerance));
  }
}

}  // namespace

TEST_CASE("sum: all dims, some dims, keepdim and negative dims match a naive loop") {
  const Shape shape{2, 3, 4};
  std::vector<double> values = wavy(24);
  Tensor x = from_vector(values, shape);
  REQUIRE(sum(x).shape() == Shape{});
  REQUIRE(sum(x).item() == Approx(reference_sum(values, shape, {0, 1, 2})[0]));
  for (const std::vector<int64_t>& dims : std::vector<std::vector<int64_t>>{{0}, {1}, {2}, {0, 2}, {1, 2}, {0, 1}}) {
    INFO("dims " << Shape(dims));
    Tensor kept = sum(x, dims, /*keepdim=*/true);
    Shape expected_shape = shape;
    for (int64_t d : dims) expected_shape[d] = 1;
    REQUIRE(kept.shape() == expected_shape);
    require_close(kept.to_vector<double>(), reference_sum(values, shape, dims), 1e-12);
    Tensor dropped = sum(x, dims);
    REQUIRE(dropped.dim() == 3 - static_cast<int64_t>(dims.size()));
    require_close(dropped.to_vector<double>(), reference_sum(values, shape, dims), 1e-12);
  }
  REQUIRE(equal(sum(x, {-1}), sum(x, {2})));
  REQUIRE(equal(sum(x, {-3, -1}), sum(x, {0, 2})));
  REQUIRE(equal(x.sum({}, true), sum(x, {0, 1, 2}, true)));  // an empty list reduces everything
}

TEST_CASE("sum: transposed, permuted, sliced and expanded inputs") {
  const Shape shape{4, 5, 6};
  std::vector<double> values = wavy(120);
  Tensor base = from_vector(values, shape).to(kFloat32);
  Tensor permuted = base.permute({2, 0, 1});  // [6, 4, 5], no dim contiguous in place
  std::vector<double> permuted_values = permuted.to_vector<double>();
  for (const std::vector<int64_t>& dims : std::vector<std::vector<int64_t>>{{0}, {1}, {2}, {0, 1}, {0, 2}, {1, 2}, {0, 1, 2}}) {
    INFO("dims " << Shape(dims));
    require_close(sum(permuted, dims, true).to_vector<double>(), reference_sum(permuted_values, permuted.shape(), dims), 1e-5);
  }
  Tensor sliced = base.slice(2, 1, 6, 2).slice(0, 1, 4);  // [3, 5, 3], steps of 2 in the last dim
  std::vector<double> sliced_values = sliced.to_vector<double>();
  require_close(sum(sliced, {2}).to_vector<double>(), reference_sum(sliced_values, sliced.shape(), {2}), 1e-5);
  require_close(sum(sliced, {0}).to_vector<double>(), reference_sum(sliced_values, sliced.shape(), {0}), 1e-5);
  Tensor column = from_vector<float>({1, 2, 3}, {3, 1});
  Tensor expanded = column.expand({3, 7});  // stride 0 along the summed dim
  REQUIRE(sum(expanded, {1}).to_vector<float>() == std::vector<float>{7, 14, 21});
  REQUIRE(sum(expanded, {0}).to_vector<float>() == std::vector<float>(7, 6.0f));
}

TEST_CASE("sum: bias-gradient shape (over dim 0 of a wide matrix) and long rows") {
  // Wider than one column block and long enough that the reduced range is split into chunks.
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{3000, 300}, {64, 1000}, {20000, 3}, {2, 40000}}) {
    INFO(rows << " x " << cols);
    std::vector<double> values = wavy(rows * cols);
    Tensor x = from_vector(values, {rows, cols}).to(kFloat32);
    std::vector<double> rounded = x.to_vector<double>();
    require_close(sum(x, {0}).to_vector<double>(), reference_sum(rounded, x.shape(), {0}), 1e-4);
    require_close(sum(x, {1}).to_vector<double>(), reference_sum(rounded, x.shape(), {1}), 1e-4);
    require_close(sum(x.t(), {1}).to_vector<double>(), reference_sum(rounded, x.shape(), {0}), 1e-4);
  }
}

TEST_CASE("sum: a large full reduction is accurate and independent of the thread count") {
  const int64_t count = 1 << 21;
  Tensor x = full({count}, 0.1, {.dtype = kFloat32});
  double one = static_cast<double>(0.1f);
  int threads = num_threads();
  set_num_threads(1);
  Tensor serial = sum(x);
  Tensor rows_serial = sum(x.view({64, count / 64}), {0});
  set_num_threads(std::max(threads, 3));
  Tensor parallel = sum(x);
  Tensor rows_parallel = sum(x.view({64, count / 64}), {0});
  set_num_threads(threads);
  REQUIRE(serial.item() == Approx(one * count).epsilon(1e-7));  // double accumulation: no drift
  REQUIRE(equal(serial, parallel));
  REQUIRE(equal(rows_serial, rows_parallel));
}

TEST_CASE("sum: integers and bools sum exactly into int64") {
  Tensor small = from_vector<int32_t>({2147483647, 1, 5, -3}, {2, 2});
  Tensor total = sum(small);
  REQUIRE(total.dtype() == kInt64);
  REQUIRE(total.to_vector<int64_t>() == std::vector<int64_t>{2147483650LL});
  REQUIRE(sum(small, {0}).to_vector<int64_t>() == std::vector<int64_t>{2147483652LL, -2});
  Tensor flags = gt(from_vector<float>({1, -1, 2, 3}), 0.0);
  REQUIRE(sum(flags).dtype() == kInt64);
  REQUIRE(sum(flags).item() == 3);
  Tensor big = from_vector<int64_t>({int64_t{1} << 40, 3, -(int64_t{1} << 40)});
  REQUIRE(sum(big).item<int64_t>() == 3);
}

TEST_CASE("sum: bfloat16 and float16 are accumulated wider than they are stored") {
  for (DType dtype : {kBFloat16, kFloat16}) {
    Tensor x = full({4096}, 0.01, {.dtype = dtype});
    double element = x.to_vector<double>()[0];
    Tensor total = sum(x);
    REQUIRE(total.dtype() == dtype);
    // A running bf16 sum would stall near 2; the wide accumulator only rounds once at the end.
    REQUIRE(total.item() == Approx(element * 4096).epsilon(dtype == kBFloat16 ? 8e-3 : 1e-3));
  }
}

TEST_CASE("sum and mean over a zero-size dim, and a 0-d tensor") {
  Tensor empty_rows = zeros({0, 3});
  REQUIRE(sum(empty_rows, {0}).to_vector<float>() == std::vector<float>{0, 0, 0});
  REQUIRE(sum(empty_rows, {1}).shape() == Shape{0});
  for (float value : mean(empty_rows, {0}).to_vector<float>()) REQUIRE(std::isnan(value));
  Tensor scalar = scalar_tensor(2.5, kFloat32);
  REQUIRE(sum(scalar).item() == 2.5);
  REQUIRE(sum(scalar, {0}).item() == 2.5);
  REQUIRE(mean(scalar, {-1}, true).shape() == Shape{});
}

TEST_CASE("mean: values, keepdim, and floating dtypes only") {
  std::vector<double> values = wavy(60);
  Tensor x = from_vector(values, {3, 4, 5});
  std::vector<double> sums = reference_sum(values, x.shape(), {0, 2});
  Tensor m = mean(x, {0, -1}, true);
  REQUIRE(m.shape() == Shape{1, 4, 1});
  for (size_t i = 0; i < sums.size(); ++i) REQUIRE(m.to_vector<double>()[i] == Approx(sums[i] / 15.0));
  REQUIRE(mean(x).item() == Approx(reference_sum(values, x.shape(), {0, 1, 2})[0] / 60.0));
  REQUIRE(mean(x.to(kBFloat16)).dtype() == kBFloat16);
  REQUIRE_THROWS_WITH(mean(arange(4)), Contains("mean: expected a floating-point tensor, got int64"));
}

TEST_CASE("var: Bessel's correction by default, correction 0, keepdim, strided input") {
  std::vector<double> values = wavy(30);
  Tensor x = from_vector(values, {5, 6});
  for (int64_t correction : {1, 0}) {
    for (int64_t dim : {0, 1}) {
      INFO("correction " << correction << " dim " << dim);
      std::vector<double> means = reference_sum(values, x.shape(), {dim});
      int64_t count = x.size(dim);
      for (double& m : means) m /= static_cast<double>(count);
      std::vector<double> squares(values.size());
      for_each_index(x.shape(), [&](int64_t flat, const std::vector<int64_t>& c) {
        double deviation = values[flat] - means[dim == 0 ? c[1] : c[0]];
        squares[flat] = deviation * deviation;
      });
      std::vector<double> expected = reference_sum(squares, x.shape(), {dim});
      for (double& v : expected) v /= static_cast<double>(count - correction);
      require_close(var(x, {dim}, correction).to_vector<double>(), expected, 1e-12);
      require_close(var(x.t(), {1 - dim}, correction).to_vector<double>(), expected, 1e-12);
      REQUIRE(var(x, {dim}, correction, true).shape() == (dim == 0 ? Shape{1, 6} : Shape{5, 1}));
    }
  }
  // Constant data far from zero: the two-pass formula gives exactly 0, not cancellation noise.
  REQUIRE(var(full({1000}, 1e4, {.dtype = kFloat32}), {0}).item() == 0.0);
  REQUIRE(var(from_vector<float>({1, 2, 3, 4}).to(kBFloat16), {0}).item() == Approx(1.6667).epsilon(1e-2));
  REQUIRE_THROWS_WITH(var(arange(4), {0}), Contains("var: expected a floating-point tensor, got int64"));
}

TEST_CASE("max and min over everything") {
  std::vector<double> values = wavy(50);
  Tensor x = from_vector(values, {5, 10});
  double largest = *std::max_element(values.begin(), values.end());
  double smallest = *std::min_element(values.begin(), values.end());
  REQUIRE(max(x).item() == largest);
  REQUIRE(min(x).item() == smallest);
  REQUIRE(max(x.t()).item() == largest);
  REQUIRE(max(x).shape() == Shape{});
  REQUIRE(max(from_vector<int64_t>({-5, 7, 3}).view({3})).item<int64_t>() == 7);
  REQUIRE(min(from_vector<int32_t>({-5, 7, 3})).item<int32_t>() == -5);
  REQUIRE(max(from_vector<float>({1, 2, 3}).to(kBFloat16)).dtype() == kBFloat16);
  for (int64_t length : {3, 100}) {  // the tail loop and the vectorised lanes
    std::vector<float> row(static_cast<size_t>(length), 1.0f);
    row[1] = std::numeric_limits<float>::quiet_NaN();
    row[length - 1] = 5.0f;
    Tensor with_nan = from_vector(row);
    REQUIRE(std::isnan(max(with_nan).item()));
    REQUIRE(std::isnan(min(with_nan).item()));
    REQUIRE(argmax(with_nan, 0).item() == 1);
    Tensor columns = with_nan.view({length, 1}).expand({length, 40}).contiguous();  // NaN in row 1 of every column
    ValuesAndIndices down = max(columns, 0);
    for (double value : down.values.to_vector<double>()) REQUIRE(std::isnan(value));
    REQUIRE(down.indices.to_vector<int64_t>() == std::vector<int64_t>(40, 1));
    REQUIRE(min(columns.t(), 1).indices.to_vector<int64_t>() == std::vector<int64_t>(40, 1));
  }
  REQUIRE_THROWS_WITH(max(zeros({2, 0})), Contains("max: expected a non-empty tensor to reduce over all dims, got shape [2, 0]"));
  REQUIRE_THROWS_WITH(min(gt(x, 0.0)), Contains("min: expected a numeric tensor, got bool"));
}

TEST_CASE("max and min along a dim: values, first position of ties, keepdim, strided input") {
  Tensor x = from_vector<float>({3, 1, 3, 0,   //
                                 -1, 5, 5, 2,  //
                                 4, 4, -2, 4},
                                {3, 4});
  ValuesAndIndices along_rows = max(x, 1);
  REQUIRE(along_rows.values.to_vector<float>() == std::vector<float>{3, 5, 4});
  REQUIRE(along_rows.indices.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 0});
  REQUIRE(along_rows.indices.dtype() == kInt64);
  ValuesAndIndices down_columns = min(x, 0, /*keepdim=*/true);
  REQUIRE(down_columns.values.shape() == Shape{1, 4});
  REQUIRE(down_columns.values.to_vector<float>() == std::vector<float>{-1, 1, -2, 0});
  REQUIRE(down_columns.indices.to_vector<int64_t>() == std::vector<int64_t>{1, 0, 2, 0});
  ValuesAndIndices column_max = max(x, -2);
  REQUIRE(column_max.values.to_vector<float>() == std::vector<float>{4, 5, 5, 4});
  REQUIRE(column_max.indices.to_vector<int64_t>() == std::vector<int64_t>{2, 1, 1, 2});
  // The same through a transposed view (the reduced dim is then strided).
  REQUIRE(equal(max(x.t(), 0).indices, along_rows.indices));
  REQUIRE(equal(min(x.t(), 1).values, min(x, 0).values));
  REQUIRE(argmax(x, 1).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 0});
  REQUIRE(argmin(x, 1, true).shape() == Shape{3, 1});
  REQUIRE(argmin(x, 1).to_vector<int64_t>() == std::vector<int64_t>{3, 0, 2});
  REQUIRE(argmax(from_vector<int64_t>({4, 9, 9, 1}), 0).item() == 1);
  float nan = std::numeric_limits<float>::quiet_NaN();
  REQUIRE(argmax(from_vector<float>({1, nan, 7, nan}), 0).item() == 1);  // NaN is the extreme, as PyTorch
  REQUIRE(argmin(from_vector<float>({1, 0, nan}), 0).item() == 2);
  ValuesAndIndices of_scalar = max(scalar_tensor(4.0, kFloat32), 0);
  REQUIRE(of_scalar.values.shape() == Shape{});
  REQUIRE(of_scalar.indices.item() == 0);
  REQUIRE_THROWS_WITH(max(zeros({2, 0}), 1), Contains("max: cannot reduce dim 1 of size 0"));
  REQUIRE_THROWS_WITH(argmax(x, 2), Contains("argmax: dimension 2 is out of range for a tensor of rank 2"));
}

TEST_CASE("max along a dim on long rows and wide columns matches a naive scan") {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{7, 1000}, {1000, 300}, {33, 17}}) {
    std::vector<double> values = wavy(rows * cols);
    Tensor x = from_vector(values, {rows, cols}).to(kFloat32);
    std::vector<double> rounded = x.to_vector<double>();
    for (int64_t dim : {0, 1}) {
      INFO(rows << " x " << cols << " dim " << dim);
      ValuesAndIndices result = max(x, dim);
      std::vector<double> got_values = result.values.to_vector<double>();
      std::vector<int64_t> got_indices = result.indices.to_vector<int64_t>();
      int64_t outputs = dim == 0 ? cols : rows, length = dim == 0 ? rows : cols;
      for (int64_t o = 0; o < outputs; ++o) {
        double best = -INFINITY;
        int64_t where = 0;
        for (int64_t k = 0; k < length; ++k) {
          double value = dim == 0 ? rounded[k * cols + o] : rounded[o * cols + k];
          if (value > best) {
            best = value;
            where = k;
          }
        }
        REQUIRE(got_values[o] == best);
        REQUIRE(got_indices[o] == where);
      }
    }
  }
}

TEST_CASE("reduction arguments are checked and named") {
  Tensor x = zeros({2, 3});
  REQUIRE_THROWS_WITH(sum(x, {2}), Contains("sum: dimension 2 is out of range for a tensor of rank 2"));
  REQUIRE_THROWS_WITH(sum(x, {1, -1}), Contains("sum: dim 1 appears more than once in the reduced dims [1, -1]"));
  REQUIRE_THROWS_WITH(mean(x, {-3}), Contains("mean: dimension -3 is out of range"));
}

TEST_CASE("sum_to sums broadcast dims back") {
  std::vector<double> values = wavy(24);
  Tensor x = from_vector(values, {2, 3, 4});
  Tensor to_row = sum_to(x, {4});
  REQUIRE(to_row.shape() == Shape{4});
  require_close(to_row.to_vector<double>(), reference_sum(values, x.shape(), {0, 1}), 1e-12);
  Tensor to_column = sum_to(x, {3, 1});
  REQUIRE(to_column.shape() == Shape{3, 1});
  require_close(to_column.to_vector<double>(), reference_sum(values, x.shape(), {0, 2}), 1e-12);
  REQUIRE(sum_to(x, {1, 1, 4}).shape() == Shape{1, 1, 4});
  REQUIRE(sum_to(x, {}).item() == Approx(reference_sum(values, x.shape(), {0, 1, 2})[0]));
  REQUIRE(sum_to(x, x.shape()).is_same(x));
  REQUIRE_THROWS_WITH(sum_to(x, {2, 4}), Contains("sum_to: cannot sum a tensor of shape [2, 3, 4] to shape [2, 4]"));
  REQUIRE_THROWS_WITH(sum_to(x, {1, 2, 3, 4}), Contains("cannot sum a tensor of shape [2, 3, 4] to shape [1, 2, 3, 4]"));
}
