// matmul against a naive triple loop, over layouts, batch broadcasting and dtypes.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "dtrain.h"

using namespace dtrain;
using Catch::Contains;

namespace {

// C[b] = A[b] @ B[b] with plain loops over logical (row-major) values.
std::vector<double> naive_matmul(const std::vector<double>& a, const std::vector<double>& b, int64_t batch, int64_t m,
                                 int64_t k, int64_t n) {
  std::vector<double> c(static_cast<size_t>(batch * m * n), 0.0);
  for (int64_t p = 0; p < batch; ++p)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t l = 0; l < k; ++l)
          c[static_cast<size_t>((p * m + i) * n + j)] +=
              a[static_cast<size_t>((p * m + i) * k + l)] * b[static_cast<size_t>((p * k + l) * n + j)];
  return c;
}

void require_near(const std::vector<double>& got, const std::vector<double>& expected, double tolerance) {
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) REQUIRE(got[i] == Approx(expected[i]).margin(tolerance).epsilon(tolerance));
}

}  // namespace

TEST_CASE("matmul equals the naive product for every operand layout") {
  Generator generator(5);
  Tensor a = randn({37, 19}, {.dtype = kFloat64}, &generator);
  Tensor b = randn({19, 23}, {.dtype = kFloat64}, &generator);
  std::vector<double> expected = naive_matmul(a.to_vector<double>(), b.to_vector<double>(), 1, 37, 19, 23);
  require_near(matmul(a, b).to_vector<double>(), expected, 1e-12);
  // The same logical operands stored transposed (column-major) and as strided slices.
  Tensor a_transposed_storage = a.t().contiguous().t();
  Tensor b_transposed_storage = b.t().contiguous().t();
  require_near(matmul(a_transposed_storage, b_transposed_storage).to_vector<double>(), expected, 1e-12);
  Tensor a_wide = zeros({37, 38}, {.dtype = kFloat64});
  a_wide.slice(1, 0, 38, 2).copy_(a);
  require_near(matmul(a_wide.slice(1, 0, 38, 2), b).to_vector<double>(), expected, 1e-12);
}

TEST_CASE("batched matmul broadcasts batch dimensions") {
  Generator generator(6);
  Tensor a = randn({2, 3, 4, 5}, {.dtype = kFloat64}, &generator);
  Tensor b = randn({3, 5, 2}, {.dtype = kFloat64}, &generator);
  Tensor c = matmul(a, b);
  REQUIRE(c.shape() == Shape{2, 3, 4, 2});
  Tensor b_full = b.unsqueeze(0).expand({2, 3, 5, 2}).contiguous();
  std::vector<double> expected = naive_matmul(a.to_vector<double>(), b_full.to_vector<double>(), 6, 4, 5, 2);
  require_near(c.to_vector<double>(), expected, 1e-12);
}

TEST_CASE("matmul in float32, bfloat16 and float16 tracks the float64 product") {
  Generator generator(7);
  Tensor a = randn({16, 32}, {.dtype = kFloat64}, &generator);
  Tensor b = randn({32, 8}, {.dtype = kFloat64}, &generator);
  for (auto [dtype, tolerance] : {std::pair{kFloat32, 1e-4}, {kBFloat16, 0.3}, {kFloat16, 0.05}}) {
    Tensor low_a = a.to(dtype), low_b = b.to(dtype);
    // Reference: the exact product of the rounded inputs, rounded once more at the end.
    std::vector<double> expected = naive_matmul(low_a.to_vector<double>(), low_b.to_vector<double>(), 1, 16, 32, 8);
    Tensor c = matmul(low_a, low_b);
    REQUIRE(c.dtype() == dtype);
    require_near(c.to_vector<double>(), expected, tolerance);
  }
}

TEST_CASE("matmul of vectors and empty inner dimension") {
  Tensor v = from_vector<float>({1, 2, 3});
  Tensor m = from_vector<float>({1, 0, 0, 1, 1, 1}, {3, 2});
  REQUIRE(matmul(v, v).item() == 14.0);
  REQUIRE(matmul(v, m).to_vector<float>() == std::vector<float>{4, 5});
  REQUIRE(matmul(m.t(), v).to_vector<float>() == std::vector<float>{4, 5});
  REQUIRE(matmul(zeros({2, 0}), zeros({0, 3})).to_vector<float>() == std::vector<float>(6, 0.0f));
}

TEST_CASE("matmul errors name both shapes or both dtypes") {
  REQUIRE_THROWS_WITH(matmul(zeros({2, 3}), zeros({4, 5})),
                      Contains("shapes [2, 3] and [4, 5] cannot be multiplied (3 columns vs 4 rows)"));
  REQUIRE_THROWS_WITH(matmul(zeros({2, 3}), zeros({3, 2}, {.dtype = kFloat64})),
                      Contains("expected both operands of one dtype, got float32 and float64"));
  REQUIRE_THROWS_WITH(matmul(zeros({2, 3, 4}), zeros({3, 4, 2})),
                      Contains("shapes [2] and [3] cannot be broadcast together"));
  REQUIRE_THROWS_WITH(matmul(zeros({2}, {.dtype = kInt64}), zeros({2}, {.dtype = kInt64})),
                      Contains("expected floating operands, got int64"));
  REQUIRE_THROWS_WITH(matmul(scalar_tensor(1.0), zeros({2})), Contains("at least one dimension"));
}
