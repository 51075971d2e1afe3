// softmax / log_softmax and their backward kernel against formulas evaluated here in double.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "core/core.h"
#include "core/cpu/cpu_backend.h"

using namespace dtrain;
using Catch::Contains;

namespace {

std::vector<double> wavy(int64_t count, double scale = 3.0) {
  std::vector<double> values(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) values[i] = std::sin(0.61 * static_cast<double>(i) + 0.3) * scale;
  return values;
}

// Softmax of a [rows, cols] row-major matrix along dim (0: down columns, 1: along rows).
std::vector<double> reference_softmax(const std::vector<double>& x, int64_t rows, int64_t cols, int64_t dim, bool log) {
  std::vector<double> out(x.size());
  int64_t outer = dim == 1 ? rows : cols, length = dim == 1 ? cols : rows;
  auto at = [&](int64_t o, int64_t k) { return dim == 1 ? o * cols + k : k * cols + o; };
  for (int64_t o = 0; o < outer; ++o) {
    double largest = -INFINITY;
    for (int64_t k = 0; k < length; ++k) largest = std::max(largest, x[at(o, k)]);
    double total = 0;
    for (int64_t k = 0; k < length; ++k) total += std::exp(x[at(o, k)] - largest);
    for (int64_t k = 0; k < length; ++k) {
      double shifted = x[at(o, k)] - largest;
      out[at(o, k)] = log ? shifted - std::log(total) : std::exp(shifted) / total;
    }
  }
  return out;
}

void require_close(const std::vector<double>& got, const std::vector<double>& expected, double tolerance) {
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    REQUIRE(got[i] == Approx(expected[i]).margin(tolerance).epsilon(tolerance));
  }
}

}  // namespace

TEST_CASE("softmax and log_softmax along each dim match the formula, float32 and float64") {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{3, 5}, {4, 1000}, {700, 3}, {5, 300}}) {
    std::vector<double> values = wavy(rows * cols);
    for (auto [dtype, tolerance] : {std::pair{kFloat64, 1e-13}, {kFloat32, 2e-6}}) {
      Tensor x = from_vector(values, {rows, cols}).to(dtype);
      for (int64_t dim : {0, 1}) {
        for (bool log : {false, true}) {
          INFO(rows << " x " << cols << " dim " << dim << (log ? " log" : "") << " " << dtype);
          Tensor y = log ? log_softmax(x, dim) : softmax(x, dim);
          REQUIRE(y.dtype() == dtype);
          REQUIRE(y.shape() == x.shape());
          require_close(y.to_vector<double>(), reference_softmax(values, rows, cols, dim, log), tolerance);
          Tensor negative = log ? log_softmax(x, dim - 2) : softmax(x, dim - 2);
          REQUIRE(equal(negative, y));
        }
      }
    }
  }
}

TEST_CASE("softmax on transposed and sliced inputs") {
  std::vector<double> values = wavy(6 * 8);
  Tensor base = from_vector(values, {6, 8});
  Tensor transposed = base.t();  // [8, 6]: softmax along its dim 1 runs down base's columns
  require_close(softmax(transposed, 1).t().contiguous().to_vector<double>(), reference_softmax(values, 6, 8, 0, false), 1e-13);
  require_close(log_softmax(transposed, 0).t().contiguous().to_vector<double>(), reference_softmax(values, 6, 8, 1, true), 1e-13);
  Tensor every_other = base.slice(1, 0, 8, 2);  // [6, 4] with stride 2 along the softmax dim
  std::vector<double> sliced_values = every_other.to_vector<double>();
  require_close(softmax(every_other, 1).to_vector<double>(), reference_softmax(sliced_values, 6, 4, 1, false), 1e-13);
  Tensor cube = from_vector(wavy(2 * 3 * 4), {2, 3, 4});
  Tensor middle = softmax(cube, 1);  // neither innermost nor outermost
  std::vector<double> sums = sum(middle, {1}).to_vector<double>();
  for (double s : sums) REQUIRE(s == Approx(1.0).epsilon(1e-14));
  REQUIRE(equal(softmax(cube.permute({0, 2, 1}), 2).permute({0, 2, 1}).contiguous(), middle));
}

TEST_CASE("softmax is stable for large, -inf and equal inputs") {
  Tensor large = from_vector<float>({1000, 1001, 1002}, {1, 3});
  std::vector<double> expected = reference_softmax({0, 1, 2}, 1, 3, 1, false);
  require_close(softmax(large, 1).to_vector<double>(), expected, 1e-6);
  require_close(log_softmax(large, 1).to_vector<double>(), reference_softmax({0, 1, 2}, 1, 3, 1, true), 1e-5);
  float inf = std::numeric_limits<float>::infinity();
  Tensor masked = from_vector<float>({0, -inf, 0, -inf}, {1, 4});
  REQUIRE(softmax(masked, 1).to_vector<float>() == std::vector<float>{0.5f, 0.0f, 0.5f, 0.0f});
  REQUIRE(log_softmax(masked, 1).to_vector<float>()[1] == -inf);
  Tensor tiny = from_vector<float>({-200, 0}, {1, 2});  // exp(-200) underflows float: exactly 0
  REQUIRE(softmax(tiny, 1).to_vector<float>() == std::vector<float>{0.0f, 1.0f});
  REQUIRE(log_softmax(tiny, 1).to_vector<float>()[0] == Approx(-200.0f));
  Tensor flat = zeros({2, 4});
  for (float p : softmax(flat, 1).to_vector<float>()) REQUIRE(p == 0.25f);
}

TEST_CASE("softmax in bfloat16 and float16 computes in float") {
  std::vector<double> values = wavy(3 * 40);
  for (DType dtype : {kBFloat16, kFloat16}) {
    Tensor x = from_vector(values, {3, 40}).to(dtype);
    std::vector<double> rounded = x.to_vector<double>();
    double tolerance = dtype == kBFloat16 ? 8e-3 : 1e-3;
    for (int64_t dim : {0, 1}) {
      Tensor y = softmax(x, dim);
      REQUIRE(y.dtype() == dtype);
      require_close(y.to_vector<double>(), reference_softmax(rounded, 3, 40, dim, false), tolerance);
      require_close(log_softmax(x, dim).to_vector<double>(), reference_softmax(rounded, 3, 40, dim, true), tolerance * 10);
    }
  }
}

TEST_CASE("softmax of a 0-d tensor, an empty tensor, and bad arguments") {
  REQUIRE(softmax(scalar_tensor(3.0, kFloat32), 0).item() == 1.0);
  REQUIRE(log_softmax(scalar_tensor(3.0, kFloat64), -1).item() == 0.0);
  REQUIRE(softmax(zeros({0, 5}), 1).shape() == Shape{0, 5});
  REQUIRE_THROWS_WITH(softmax(arange(4), 0), Contains("softmax: expected a floating-point tensor, got int64"));
  REQUIRE_THROWS_WITH(log_softmax(zeros({2, 3}), 2), Contains("log_softmax: dimension 2 is out of range for a tensor of rank 2"));
}

TEST_CASE("softmax_backward kernel matches y * (g - sum(g y)) and g - exp(y) sum(g)") {
  // Plain variables, not a structured binding: the lambda below captures them (clang 14 cannot
  // capture a structured binding, C++20 P1091, and the sanitizer build compiles with clang 14).
  for (const auto& size : {std::pair<int64_t, int64_t>{3, 7}, {2, 600}, {300, 4}}) {
    const int64_t rows = size.first, cols = size.second;
    std::vector<double> x_values = wavy(rows * cols), g_values = wavy(rows * cols, 1.5);
    std::reverse(g_values.begin(), g_values.end());
    for (int64_t dim : {0, 1}) {
      for (bool log : {false, true}) {
        INFO(rows << " x " << cols << " dim " << dim << (log ? " log" : ""));
        std::vector<double> y_values = reference_softmax(x_values, rows, cols, dim, log);
        std::vector<double> expected(y_values.size());
        int64_t outer = dim == 1 ? rows : cols, length = dim == 1 ? cols : rows;
        auto at = [&](int64_t o, int64_t k) { return dim == 1 ? o * cols + k : k * cols + o; };
        for (int64_t o = 0; o < outer; ++o) {
          double total = 0;
          for (int64_t k = 0; k < length; ++k) total += log ? g_values[at(o, k)] : g_values[at(o, k)] * y_values[at(o, k)];
          for (int64_t k = 0; k < length; ++k) {
            size_t i = static_cast<size_t>(at(o, k));
            expected[i] = log ? g_values[i] - std::exp(y_values[i]) * total : y_values[i] * (g_values[i] - total);
          }
        }
        Tensor y = from_vector(y_values, {rows, cols});
        Tensor g = from_vector(g_values, {rows, cols});
        Tensor dx = empty({rows, cols}, {.dtype = kFloat64});
        cpu::backend().softmax_backward(g, y, dim, log, dx);
        require_close(dx.to_vector<double>(), expected, 1e-12);
        // Transposed operands give the same numbers.
        Tensor dx_t = empty({cols, rows}, {.dtype = kFloat64});
        cpu::backend().softmax_backward(g.t(), y.t(), 1 - dim, log, dx_t);
        require_close(dx_t.t().contiguous().to_vector<double>(), expected, 1e-12);
      }
    }
  }
}
