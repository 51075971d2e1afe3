// The fused training kernels of the CPU kernel table (core/backend.h: layer_norm, cross_entropy,
// adam_update and their backwards), called directly and checked against hand formulas in double.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/backend.h"
#include "core/core.h"

using namespace dtrain;

namespace {

Backend& cpu_kernels() { return backend_for(Device::cpu()); }

std::vector<double> wavy_values(int64_t n, double scale, double phase) {
  std::vector<double> values(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) values[static_cast<size_t>(i)] = scale * std::sin(0.731 * static_cast<double>(i) + phase);
  return values;
}

Tensor tensor_of(const std::vector<double>& values, const Shape& shape, DType dtype) {
  return from_vector(values, shape, {.dtype = kFloat64}).to(dtype);
}

double tolerance_of(DType dtype) { return dtype == kFloat64 ? 1e-12 : 2e-5; }

void require_close(const Tensor& got, const std::vector<double>& expected, double tolerance, const char* what) {
  INFO(what);
  const std::vector<double> values = got.to_vector<double>();
  REQUIRE(values.size() == expected.size());
  for (size_t i = 0; i < values.size(); ++i) {
    INFO("element " << i);
    REQUIRE(values[i] == Approx(expected[i]).epsilon(tolerance).margin(tolerance));
  }
}

}  // namespace

TEST_CASE("cpu kernel table: layer_norm and its backward match the formulas", "[core][fused]") {
  const int64_t rows = 70, size = 9;  // 70 rows: more than one 64-row block of weight partials
  for (DType dtype : {kFloat32, kFloat64}) {
    DYNAMIC_SECTION(dtype) {
      const std::vector<double> x = wavy_values(rows * size, 2.0, 0.3);
      const std::vector<double> weight = wavy_values(size, 1.0, 1.1);
      const std::vector<double> bias = wavy_values(size, 0.5, 2.0);
      const std::vector<double> dy = wavy_values(rows * size, 1.5, 0.7);
      const double eps = 1e-5;
      Tensor out = empty({rows, size}, {.dtype = dtype});
      Tensor mean = empty({rows}, {.dtype = dtype});
      Tensor rstd = empty({rows}, {.dtype = dtype});
      cpu_kernels().layer_norm(tensor_of(x, {rows, size}, dtype), tensor_of(weight, {size}, dtype),
                               tensor_of(bias, {size}, dtype), eps, out, mean, rstd);
      Tensor grad_x = empty({rows, size}, {.dtype = dtype});
      Tensor grad_weight = empty({size}, {.dtype = dtype});
      Tensor grad_bias = empty({size}, {.dtype = dtype});
      cpu_kernels().layer_norm_backward(tensor_of(dy, {rows, size}, dtype), tensor_of(x, {rows, size}, dtype),
                                        tensor_of(weight, {size}, dtype), mean, rstd, Tensor(), grad_x, grad_weight,
                                        grad_bias);

      std::vector<double> expected_out, expected_mean, expected_rstd, expected_grad_x;
      std::vector<double> expected_grad_weight(size, 0.0), expected_grad_bias(size, 0.0);
      for (int64_t r = 0; r < rows; ++r) {
        double m = 0.0, variance = 0.0;
        for (int64_t i = 0; i < size; ++i) m += x[r * size + i] / size;
        for (int64_t i = 0; i < size; ++i) variance += (x[r * size + i] - m) * (x[r * size + i] - m) / size;
        const double r_std = 1.0 / std::sqrt(variance + eps);
        expected_mean.push_back(m);
        expected_rstd.push_back(r_std);
        double sum_scaled = 0.0, sum_scaled_xhat = 0.0;
        for (int64_t i = 0; i < size; ++i) {
          const double xhat = (x[r * size + i] - m) * r_std;
          expected_out.push_back(xhat * weight[i] + bias[i]);
          sum_scaled += dy[r * size + i] * weight[i];
          sum_scaled_xhat += dy[r * size + i] * weight[i] * xhat;
          expected_grad_weight[i] += dy[r * size + i] * xhat;
          expected_grad_bias[i] += dy[r * size + i];
        }
        for (int64_t i = 0; i < size; ++i) {
          const double xhat = (x[r * size + i] - m) * r_std;
          expected_grad_x.push_back(r_std * (dy[r * size + i] * weight[i] - sum_scaled / size - xhat * sum_scaled_xhat / size));
        }
      }
      const double tolerance = tolerance_of(dtype) * 10;  // sums of 70 rows in float
      require_close(out, expected_out, tolerance, "out");
      require_close(mean, expected_mean, tolerance, "mean");
      require_close(rstd, expected_rstd, tolerance, "rstd");
      require_close(grad_x, expected_grad_x, tolerance, "grad_x");
      require_close(grad_weight, expected_grad_weight, tolerance, "grad_weight");
      require_close(grad_bias, expected_grad_bias, tolerance, "grad_bias");
    }
  }
}

TEST_CASE("cpu kernel table: cross_entropy rows and backward match the softmax formulas", "[core][fused]") {
  const int64_t rows = 5, classes = 7, ignore_index = -100;
  const double smoothing = 0.1;
  const std::vector<int64_t> targets{3, 0, ignore_index, 6, 2};
  for (DType dtype : {kFloat32, kFloat64}) {
    DYNAMIC_SECTION(dtype) {
      const std::vector<double> x = wavy_values(rows * classes, 3.0, 0.2);
      const Tensor logits = tensor_of(x, {rows, classes}, dtype);
      const Tensor target_tensor = from_vector(targets, {rows}, {.dtype = kInt64});
      Tensor lse = empty({rows}, {.dtype = dtype});
      Tensor loss = empty({rows}, {.dtype = dtype});
      cpu_kernels().cross_entropy(logits, target_tensor, ignore_index, smoothing, lse, loss);
      const std::vector<double> row_scales{0.5, -1.0, 2.0, 1.5, 0.25};
      Tensor grad_rows = empty({rows, classes}, {.dtype = dtype});
      cpu_kernels().cross_entropy_backward(logits, target_tensor, lse, tensor_of(row_scales, {rows}, dtype), true, 1.0,
                                           ignore_index, smoothing, grad_rows);
      Tensor grad_uniform = empty({rows, classes}, {.dtype = dtype});
      cpu_kernels().cross_entropy_backward(logits, target_tensor, lse, tensor_of({3.0}, {1}, dtype), false, 4.0,
                                           ignore_index, smoothing, grad_uniform);

      std::vector<double> expected_lse, expected_loss, expected_rows, expected_uniform;
      for (int64_t r = 0; r < rows; ++r) {
        double normaliser = 0.0;
        for (int64_t c = 0; c < classes; ++c) normaliser += std::exp(x[r * classes + c]);
        const double log_normaliser = std::log(normaliser);
        expected_lse.push_back(log_normaliser);
        const bool ignored = targets[r] == ignore_index;
        double row_loss = 0.0;
        for (int64_t c = 0; c < classes; ++c) {
          const double q = (c == targets[r] ? 1.0 - smoothing : 0.0) + smoothing / classes;
          row_loss -= q * (x[r * classes + c] - log_normaliser);
          const double softmax_minus_q = std::exp(x[r * classes + c] - log_normaliser) - q;
          expected_rows.push_back(ignored ? 0.0 : row_scales[r] * softmax_minus_q);
          expected_uniform.push_back(ignored ? 0.0 : 0.75 * softmax_minus_q);
        }
        expected_loss.push_back(ignored ? 0.0 : row_loss);
      }
      require_close(lse, expected_lse, tolerance_of(dtype), "lse");
      require_close(loss, expected_loss, tolerance_of(dtype), "loss");
      require_close(grad_rows, expected_rows, tolerance_of(dtype), "per-row gradient");
      require_close(grad_uniform, expected_uniform, tolerance_of(dtype), "uniform gradient");
    }
  }
}

TEST_CASE("cpu kernel table: adam_update with a float32 master updates the master and rounds the parameter",
          "[core][fused]") {
  const int64_t n = 40;
  AdamStepScalars scalars;
  scalars.beta1 = 0.9;
  scalars.beta2 = 0.95;
  scalars.eps = 1e-8;
  scalars.weight_decay = 0.1;
  scalars.step_size = 1e-2 / (1.0 - 0.9);          // lr 1e-2, step 1
  scalars.bias_correction2_sqrt = std::sqrt(1.0 - 0.95);
  scalars.decay_factor = 1.0 - 1e-2 * 0.1;
  scalars.decoupled = true;

  const std::vector<double> master_start = wavy_values(n, 1.0, 0.4);
  const std::vector<double> grad_values = wavy_values(n, 0.5, 1.3);
  Tensor master = tensor_of(master_start, {n}, kFloat32);
  Tensor param = master.to(kBFloat16);
  const Tensor grad = tensor_of(grad_values, {n}, kBFloat16);
  Tensor exp_avg = zeros({n}), exp_avg_sq = zeros({n});
  // A second parameter in the same call, plain float64, no master: both are updated.
  Tensor plain = tensor_of(master_start, {n}, kFloat64);
  Tensor plain_exp_avg = zeros({n}, {.dtype = kFloat64}), plain_exp_avg_sq = zeros({n}, {.dtype = kFloat64});
  cpu_kernels().adam_update({AdamTensors{.param = param, .grad = grad, .exp_avg = exp_avg, .exp_avg_sq = exp_avg_sq,
                                         .max_exp_avg_sq = Tensor(), .master = master},
                             AdamTensors{.param = plain, .grad = tensor_of(grad_values, {n}, kFloat64),
                                         .exp_avg = plain_exp_avg, .exp_avg_sq = plain_exp_avg_sq,
                                         .max_exp_avg_sq = Tensor(), .master = Tensor()}},
                            scalars);

  const std::vector<double> rounded_grad = grad.to_vector<double>();  // the step sees the bf16 gradient
  std::vector<double> expected_master, expected_plain;
  for (int64_t i = 0; i < n; ++i) {
    auto step = [&](double p, double g) {
      const double m = 0.1 * g, v = 0.05 * g * g;
      const double denom = std::sqrt(v) / scalars.bias_correction2_sqrt + scalars.eps;
      return p * scalars.decay_factor - scalars.step_size * m / denom;
    };
    expected_master.push_back(step(master_start[i], rounded_grad[i]));
    expected_plain.push_back(step(master_start[i], grad_values[i]));
  }
  require_close(master, expected_master, 1e-5, "master");
  require_close(plain, expected_plain, 1e-12, "float64 parameter");
  REQUIRE(param.dtype() == kBFloat16);
  const std::vector<double> param_values = param.to_vector<double>();
  const std::vector<double> master_rounded = master.to(kBFloat16).to_vector<double>();
  for (int64_t i = 0; i < n; ++i) REQUIRE(param_values[i] == master_rounded[i]);
}

TEST_CASE("cpu kernel table: linear adds the bias and applies GELU after the product", "[core][fused]") {
  const int64_t m = 4, k = 5, n = 3;
  const std::vector<double> rows = wavy_values(m * k, 1.0, 0.2);
  const std::vector<double> weight = wavy_values(n * k, 0.7, 1.4);
  const std::vector<double> bias = wavy_values(n, 0.3, 2.2);
  Tensor out = empty({m, n}, {.dtype = kFloat64});
  Tensor pre_activation = empty({m, n}, {.dtype = kFloat64});
  Tensor plain = empty({m, n}, {.dtype = kFloat64});
  Tensor no_pre_activation;
  const Tensor rows_tensor = tensor_of(rows, {m, k}, kFloat64), weight_tensor = tensor_of(weight, {n, k}, kFloat64);
  cpu_kernels().linear(rows_tensor, weight_tensor, tensor_of(bias, {n}, kFloat64), LinearActivation::GeluTanh, out,
                       pre_activation);
  cpu_kernels().linear(rows_tensor, weight_tensor, Tensor(), LinearActivation::None, plain, no_pre_activation);
  std::vector<double> expected_pre, expected_out, expected_plain;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double product = 0.0;
      for (int64_t p = 0; p < k; ++p) product += rows[i * k + p] * weight[j * k + p];
      const double x = product + bias[j];
      expected_plain.push_back(product);
      expected_pre.push_back(x);
      expected_out.push_back(0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))));
    }
  }
  require_close(pre_activation, expected_pre, 1e-12, "pre-activation");
  require_close(out, expected_out, 1e-12, "gelu output");
  require_close(plain, expected_plain, 1e-12, "no bias, no activation");
}
