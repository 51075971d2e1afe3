// CpuBackend::layer_norm, add_layer_norm and layer_norm_backward for float32 and float64 rows (the
// layer in layers/layer_norm.cpp calls them; 16-bit inputs take its composed path on the CPU).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/backend.h"
#include "core/cpu/cpu_backend.h"
#include "core/cpu/float_dispatch.h"
#include "core/cpu/strided_loop.h"
#include "core/error.h"

namespace dtrain::cpu {

namespace {

// Rows per partial sum of the weight and bias gradients. Fixed, so the summation order, and so
// the result, does not depend on the thread count.
constexpr int64_t kRowsPerBlock = 64;

// sum over i < n of term(i), on 8 independent accumulators the compiler can keep in vectors.
template <typename T, typename Term>
T lane_sum(int64_t n, Term&& term) {
  T lanes[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) lanes[k] += term(i + k);
  }
  T total = 0;
  for (; i < n; ++i) total += term(i);
  for (T lane : lanes) total += lane;
  return total;
}

// With a residual, each row of x + residual is written to sum first and normalised from there:
// the same values, so the same result, as add() followed by layer_norm, read while in cache.
template <typename T>
void forward_rows(const T* x, const T* residual, T* sum, const T* weight, const T* bias, T* y, T* mean, T* rstd,
                  int64_t rows, int64_t size, double eps) {
  parallel_for(rows, std::max<int64_t>(1, kParallelGrain / size), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* row = x + r * size;
      if (residual) {
        T* sum_row = sum + r * size;
        const T* residual_row = residual + r * size;
        for (int64_t i = 0; i < size; ++i) sum_row[i] = row[i] + residual_row[i];
        row = sum_row;
      }
      T* out = y + r * size;
      const T m = lane_sum<T>(size, [row](int64_t i) { return row[i]; }) / static_cast<T>(size);
      // Two passes (mean, then squared deviations): exact enough where E[x^2] - E[x]^2 is not.
      const T variance = lane_sum<T>(size, [row, m](int64_t i) { return (row[i] - m) * (row[i] - m); }) /
                         static_cast<T>(size);
      const T r_std = T(1) / std::sqrt(variance + static_cast<T>(eps));
      for (int64_t i = 0; i < size; ++i) {
        T value = (row[i] - m) * r_std;
        if (weight) value *= weight[i];
        if (bias) value += bias[i];
        out[i] = value;
      }
      mean[r] = m;
      rstd[r] = r_std;
    }
  });
}

// grad_x = rstd * (dy*w - mean(dy*w) - xhat * mean(dy*w * xhat)) per row; grad_weight and
// grad_bias sum dy * xhat and dy over rows, block by block.
// grad_sum, when given, is added to each grad_x element once that is computed (add_layer_norm's
// residual path).
template <typename T>
void backward_rows(const T* dy, const T* x, const T* weight, const T* mean, const T* rstd, const T* grad_sum,
                   T* grad_x, T* grad_weight, T* grad_bias, int64_t rows, int64_t size) {
  const int64_t blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  std::vector<T> weight_partials(grad_weight ? static_cast<size_t>(blocks * size) : 0);
  std::vector<T> bias_partials(grad_bias ? static_cast<size_t>(blocks * size) : 0);
  const T inverse_size = T(1) / static_cast<T>(size);

  parallel_for(blocks, 1, [&](int64_t block_begin, int64_t block_end) {
    for (int64_t block = block_begin; block < block_end; ++block) {
      T* weight_partial = grad_weight ? weight_partials.data() + block * size : nullptr;
      T* bias_partial = grad_bias ? bias_partials.data() + block * size : nullptr;
      const int64_t row_end = std::min(rows, (block + 1) * kRowsPerBlock);
      for (int64_t r = block * kRowsPerBlock; r < row_end; ++r) {
        const T* g = dy + r * size;
        const T* row = x + r * size;
        const T m = mean[r], r_std = rstd[r];
        if (weight_partial) {
          for (int64_t i = 0; i < size; ++i) weight_partial[i] += g[i] * (row[i] - m) * r_std;
        }
        if (bias_partial) {
          for (int64_t i = 0; i < size; ++i) bias_partial[i] += g[i];
        }
        if (!grad_x) continue;
        auto scaled = [g, weight](int64_t i) { return weight ? g[i] * weight[i] : g[i]; };
        const T sum_scaled = lane_sum<T>(size, scaled);
        const T sum_scaled_xhat = lane_sum<T>(size, [&](int64_t i) { return scaled(i) * (row[i] - m) * r_std; });
        T* out_row = grad_x + r * size;
        for (int64_t i = 0; i < size; ++i) {
          const T xhat = (row[i] - m) * r_std;
          out_row[i] = r_std * (scaled(i) - sum_scaled * inverse_size - xhat * sum_scaled_xhat * inverse_size);
        }
        if (grad_sum) {
          const T* addend = grad_sum + r * size;
          for (int64_t i = 0; i < size; ++i) out_row[i] += addend[i];
        }
      }
    }
  });

  auto sum_blocks = [blocks, size](const std::vector<T>& partials, T* total) {
    std::fill(total, total + size, T(0));
    for (int64_t block = 0; block < blocks; ++block) {
      const T* partial = partials.data() + block * size;
      for (int64_t i = 0; i < size; ++i) total[i] += partial[i];
    }
  };
  if (grad_weight) sum_blocks(weight_partials, grad_weight);
  if (grad_bias) sum_blocks(bias_partials, grad_bias);
}

template <typename T>
T* data_or_null(const Tensor& tensor) {
  return tensor.defined() ? tensor.data_ptr<T>() : nullptr;
}


}  // namespace

void CpuBackend::layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, Tensor& out,
                            Tensor& mean, Tensor& rstd) {
  require_kernel_support(*this, {.kernel = FusedKernel::LayerNorm, .tensors = {x, weight, bias}}, "layer_norm");
  const int64_t rows = mean.numel();
  const int64_t size = rows == 0 ? 0 : x.numel() / rows;
  if (rows == 0 || size == 0) return;
  visit_float32_or_float64(x.dtype(), "layer_norm", [&]<typename T>() {
    forward_rows<T>(x.data_ptr<T>(), nullptr, nullptr, data_or_null<T>(weight), data_or_null<T>(bias),
                    out.data_ptr<T>(), mean.data_ptr<T>(), rstd.data_ptr<T>(), rows, size, eps);
  });
}

void CpuBackend::add_layer_norm(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias,
                                double eps, Tensor& sum, Tensor& out, Tensor& mean, Tensor& rstd) {
  require_kernel_support(*this, {.kernel = FusedKernel::AddLayerNorm, .tensors = {x, residual, weight, bias}},
                         "add_layer_norm");
  const int64_t rows = mean.numel();
  const int64_t size = rows == 0 ? 0 : x.numel() / rows;
  if (rows == 0 || size == 0) return;
  visit_float32_or_float64(x.dtype(), "add_layer_norm", [&]<typename T>() {
    forward_rows<T>(x.data_ptr<T>(), residual.data_ptr<T>(), sum.data_ptr<T>(), data_or_null<T>(weight),
                    data_or_null<T>(bias), out.data_ptr<T>(), mean.data_ptr<T>(), rstd.data_ptr<T>(), rows, size, eps);
  });
}

void CpuBackend::layer_norm_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight, const Tensor& mean,
                                     const Tensor& rstd, const Tensor& grad_sum, Tensor& grad_x, Tensor& grad_weight,
                                     Tensor& grad_bias) {
  require_kernel_support(*this, {.kernel = FusedKernel::LayerNorm, .tensors = {x, weight, Tensor()}},
                         "layer_norm_backward");
  const int64_t rows = mean.numel();
  const int64_t size = rows == 0 ? 0 : x.numel() / rows;
  visit_float32_or_float64(x.dtype(), "layer_norm_backward", [&]<typename T>() {
    if (rows == 0 || size == 0) {
      for (Tensor* sum : {&grad_weight, &grad_bias}) {
        if (sum->defined()) std::fill(sum->data_ptr<T>(), sum->data_ptr<T>() + sum->numel(), T(0));
      }
      return;
    }
    backward_rows<T>(grad_out.data_ptr<T>(), x.data_ptr<T>(), data_or_null<T>(weight), mean.data_ptr<T>(),
                     rstd.data_ptr<T>(), data_or_null<T>(grad_sum), data_or_null<T>(grad_x), data_or_null<T>(grad_weight),
                     data_or_null<T>(grad_bias), rows, size);
  });
}

}  // namespace dtrain::cpu
