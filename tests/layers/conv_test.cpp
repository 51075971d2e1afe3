// Conv2d (im2col) and MaxPool2d against direct loops, and their gradchecks.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "tests/layers/layer_test_helpers.h"

using namespace dtrain;
using dtrain::test::random_tensor;
using dtrain::test::require_gradcheck;
using dtrain::test::require_module_gradcheck;
using Catch::Matchers::Contains;

namespace {

// The textbook convolution: a sum over channels and kernel offsets at every output position.
std::vector<double> direct_conv(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride,
                                int64_t padding, int64_t dilation) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t out_channels = weight.size(0), k = weight.size(2);
  const int64_t out_h = (h + 2 * padding - dilation * (k - 1) - 1) / stride + 1;
  const int64_t out_w = (w + 2 * padding - dilation * (k - 1) - 1) / stride + 1;
  std::vector<double> xs = x.to_vector<double>(), ws = weight.to_vector<double>();
  std::vector<double> bs = bias.defined() ? bias.to_vector<double>() : std::vector<double>(out_channels, 0.0);
  std::vector<double> out;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t o = 0; o < out_channels; ++o)
      for (int64_t i = 0; i < out_h; ++i)
        for (int64_t j = 0; j < out_w; ++j) {
          double sum = bs[o];
          for (int64_t ch = 0; ch < c; ++ch)
            for (int64_t ki = 0; ki < k; ++ki)
              for (int64_t kj = 0; kj < k; ++kj) {
                const int64_t row = i * stride - padding + ki * dilation, column = j * stride - padding + kj * dilation;
                if (row < 0 || row >= h || column < 0 || column >= w) continue;
                sum += xs[((b * c + ch) * h + row) * w + column] * ws[((o * c + ch) * k + ki) * k + kj];
              }
          out.push_back(sum);
        }
  return out;
}

}  // namespace

TEST_CASE("Conv2d matches a direct convolution for stride, padding and dilation") {
  struct Case {
    int64_t kernel, stride, padding, dilation;
  };
  for (Case c : {Case{3, 1, 0, 1}, Case{3, 2, 1, 1}, Case{2, 1, 2, 1}, Case{3, 1, 1, 2}, Case{1, 3, 0, 1}}) {
    INFO("kernel " << c.kernel << " stride " << c.stride << " padding " << c.padding << " dilation " << c.dilation);
    manual_seed(50);
    Conv2d conv(2, 3, c.kernel, {.stride = c.stride, .padding = c.padding, .dilation = c.dilation});
    conv.to(kFloat64);
    Tensor x = random_tensor({2, 2, 7, 6}, 51, false);
    Tensor y = conv(x);
    std::vector<double> expected = direct_conv(x, conv.weight(), conv.bias(), c.stride, c.padding, c.dilation);
    REQUIRE(static_cast<size_t>(y.numel()) == expected.size());
    std::vector<double> got = y.to_vector<double>();
    for (size_t i = 0; i < got.size(); ++i) REQUIRE(got[i] == Approx(expected[i]).margin(1e-12));
  }
}

TEST_CASE("Conv2d shapes, initialisation and errors") {
  manual_seed(52);
  Conv2d conv(3, 8, 3, {.padding = 1, .bias = false});
  REQUIRE(conv.weight().shape() == Shape{8, 3, 3, 3});
  REQUIRE(conv.parameters().size() == 1);
  REQUIRE(conv(zeros({1, 3, 5, 5})).shape() == Shape{1, 8, 5, 5});
  const double bound = 1.0 / std::sqrt(27.0);
  for (float value : conv.weight().to_vector<float>()) REQUIRE(std::abs(value) <= bound);
  REQUIRE(im2col(zeros({2, 3, 5, 5}), {.kernel = 3, .stride = 2}).shape() == Shape{2, 27, 4});
  REQUIRE_THROWS_WITH(conv(zeros({1, 4, 5, 5})), Contains("[N, 3, H, W]") && Contains("[1, 4, 5, 5]"));
  REQUIRE_THROWS_WITH(Conv2d(3, 8, 7)(zeros({1, 3, 5, 5})), Contains("does not fit"));
}

TEST_CASE("Conv2d gradcheck w.r.t. input, weight and bias") {
  Conv2d conv(2, 2, 2, {.stride = 2, .padding = 1});
  require_module_gradcheck(conv, random_tensor({1, 2, 3, 3}, 53));
  Conv2d dilated(1, 2, 2, {.dilation = 2});
  require_module_gradcheck(dilated, random_tensor({2, 1, 4, 3}, 54));
}

TEST_CASE("MaxPool2d takes each window's maximum, padding never wins") {
  Tensor x = random_tensor({2, 3, 5, 4}, 55, false);
  std::vector<double> xs = x.to_vector<double>();
  struct Case {
    int64_t kernel, stride, padding;
  };
  for (Case c : {Case{2, 2, 0}, Case{3, 1, 1}, Case{2, 3, 1}}) {
    INFO("kernel " << c.kernel << " stride " << c.stride << " padding " << c.padding);
    Tensor y = MaxPool2d(c.kernel, c.stride, c.padding)(x);
    const int64_t out_h = (5 + 2 * c.padding - c.kernel) / c.stride + 1, out_w = (4 + 2 * c.padding - c.kernel) / c.stride + 1;
    REQUIRE(y.shape() == Shape{2, 3, out_h, out_w});
    std::vector<double> got = y.to_vector<double>();
    size_t at = 0;
    for (int64_t plane = 0; plane < 6; ++plane)
      for (int64_t i = 0; i < out_h; ++i)
        for (int64_t j = 0; j < out_w; ++j) {
          double best = -std::numeric_limits<double>::infinity();
          for (int64_t ki = 0; ki < c.kernel; ++ki)
            for (int64_t kj = 0; kj < c.kernel; ++kj) {
              const int64_t row = i * c.stride - c.padding + ki, column = j * c.stride - c.padding + kj;
              if (row >= 0 && row < 5 && column >= 0 && column < 4) best = std::max(best, xs[(plane * 5 + row) * 4 + column]);
            }
          REQUIRE(got[at++] == best);
        }
  }
  REQUIRE(MaxPool2d(2)(x).shape() == Shape{2, 3, 2, 2});  // stride defaults to the kernel size
}

TEST_CASE("MaxPool2d gradcheck: the gradient goes to each window's maximum") {
  MaxPool2d pool(2, 1, 1);
  require_gradcheck([&pool](const std::vector<Tensor>& in) { return pool(in[0]); }, {random_tensor({1, 2, 3, 3}, 56)});
}
