// clip_grad_norm against norms worked out by hand (and torch 1.13's clip_grad_norm_).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "optim/clip_grad.h"
#include "tests/optim/optim_test_support.h"

using namespace dtrain;
using namespace dtrain::optim;
using namespace dtrain::optim::testing;

namespace {
// Gradients [3, 4] and [12]: the 2-norm of (3, 4, 12) is 13, the 1-norm 19, the largest 12.
std::vector<Tensor> three_four_twelve(DType dtype = kFloat32) {
  Tensor a = parameter({0.0, 0.0}, dtype);
  Tensor b = parameter({0.0}, dtype);
  set_gradient(a, {3.0, 4.0});
  set_gradient(b, {12.0});
  return {a, b};
}
}  // namespace

TEST_CASE("clip_grad_norm scales gradients down to max_norm and returns the norm before", "[optim][clip]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    std::vector<Tensor> params = three_four_twelve(dtype);
    const double total = clip_grad_norm(params, 6.5);
    CHECK(total == Approx(13.0).epsilon(1e-12));
    const double scale = 6.5 / (13.0 + 1e-6);
    const double tolerance = dtype == kFloat32 ? 1e-7 : 1e-15;
    check_close(values_of(params[0].grad()), {3.0 * scale, 4.0 * scale}, tolerance);
    check_close(values_of(params[1].grad()), {12.0 * scale}, tolerance);
    CHECK(total_grad_norm(params) == Approx(6.5).epsilon(1e-6));
  }
  // torch 1.13's clip_grad_norm_ on the same float64 gradients gives these (printed by Debian's
  // python3-torch): 1.4999998846153937, 1.9999998461538582 and 5.999999538461575.
  std::vector<Tensor> params = three_four_twelve(kFloat64);
  clip_grad_norm(params, 6.5);
  check_close(values_of(params[0].grad()), {1.4999998846153937, 1.9999998461538582}, 1e-15);
  check_close(values_of(params[1].grad()), {5.999999538461575}, 1e-15);
}

TEST_CASE("clip_grad_norm leaves gradients alone below max_norm", "[optim][clip]") {
  std::vector<Tensor> params = three_four_twelve();
  CHECK(clip_grad_norm(params, 20.0) == Approx(13.0));
  CHECK(values_of(params[0].grad()) == std::vector<double>{3.0, 4.0});
  CHECK(values_of(params[1].grad()) == std::vector<double>{12.0});
}

TEST_CASE("total_grad_norm supports other norms and skips missing gradients", "[optim][clip]") {
  std::vector<Tensor> params = three_four_twelve();
  params.push_back(parameter({100.0}));  // no gradient: not counted
  CHECK(total_grad_norm(params, 1.0) == Approx(19.0));
  CHECK(total_grad_norm(params, kInfinityNorm) == 12.0);
  CHECK(total_grad_norm(params, 3.0) == Approx(std::cbrt(27.0 + 64.0 + 1728.0)).epsilon(1e-12));
  CHECK(total_grad_norm({parameter({1.0})}) == 0.0);
  CHECK_THROWS_WITH(total_grad_norm(params, 0.0), Catch::Contains("norm_type > 0"));
}

TEST_CASE("total_grad_norm of strided and 16-bit gradients uses tensor ops with the same result", "[optim][clip]") {
  Tensor param = zeros({2, 3});
  param.set_requires_grad();
  Tensor strided_gradient = from_vector(std::vector<float>{3, 0, 4, 0, 12, 0}, {3, 2}).t();
  REQUIRE_FALSE(strided_gradient.is_contiguous());
  param.set_grad(strided_gradient);
  CHECK(total_grad_norm({param}) == Approx(13.0).epsilon(1e-12));
  CHECK(total_grad_norm({param}, kInfinityNorm) == 12.0);

  Tensor half = parameter({0.0, 0.0, 0.0}, kBFloat16);
  set_gradient(half, {3.0, 4.0, 12.0});
  CHECK(total_grad_norm({half}) == Approx(13.0).epsilon(1e-6));
}

TEST_CASE("a non-finite norm is returned and leaves gradients unchanged", "[optim][clip]") {
  std::vector<Tensor> params = three_four_twelve();
  set_gradient(params[1], {std::numeric_limits<double>::quiet_NaN()});
  CHECK(std::isnan(clip_grad_norm(params, 1.0)));
  CHECK(values_of(params[0].grad()) == std::vector<double>{3.0, 4.0});
  CHECK(std::isnan(total_grad_norm(params, kInfinityNorm)));
  set_gradient(params[1], {std::numeric_limits<double>::infinity()});
  CHECK(std::isinf(clip_grad_norm(params, 1.0)));
  CHECK(values_of(params[0].grad()) == std::vector<double>{3.0, 4.0});
}

TEST_CASE("total_grad_norm is the same to the last bit at any thread count, and equals a chunked sum", "[optim][clip]") {
  // 200,003 float32 elements: several partial sums and a ragged last one, above the size where
  // the loop runs in parallel.
  Generator generator(31);
  Tensor param = zeros({200003});
  param.set_requires_grad(true);
  param.set_grad(randn({200003}, {}, &generator));
  // The sum the contract promises, by hand: chunks of 16384 in order, each in double.
  const std::vector<float> g = param.grad().to_vector<float>();
  double expected_square = 0.0;
  for (size_t begin = 0; begin < g.size(); begin += 16384) {
    double chunk = 0.0;
    for (size_t i = begin; i < std::min(g.size(), begin + 16384); ++i) chunk += double(g[i]) * double(g[i]);
    expected_square += chunk;
  }
  const int threads = num_threads();
  std::vector<double> norms;
  for (int count : {1, 2, 3, 4}) {
    set_num_threads(count);
    norms.push_back(total_grad_norm({param}, 2.0));
  }
  set_num_threads(threads);
  for (double norm : norms) REQUIRE(norm == norms.front());  // bitwise, not approximately
  // Within a chunk the loop may add in SIMD lanes, so the hand sum agrees to rounding, not bits.
  REQUIRE(norms.front() == Approx(std::sqrt(expected_square)).epsilon(1e-13));
}
