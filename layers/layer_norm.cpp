#include "layers/layer_norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/cpu/strided_loop.h"
#include "core/graph.h"
#include "core/ops/elementwise.h"
#include "core/ops/factory.h"
#include "core/ops/reduce.h"
#include "core/ops/unary.h"
#include "core/ops/view.h"
#include "layers/init.h"

namespace dtrain {

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

template <typename T>
void forward_rows(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd, int64_t rows, int64_t size,
                  double eps) {
  cpu::parallel_for(rows, std::max<int64_t>(1, cpu::kParallelGrain / size), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* row = x + r * size;
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

struct BackwardBuffers {
  void* grad_x = nullptr;       // [rows, size] or null
  void* grad_weight = nullptr;  // [size] or null
  void* grad_bias = nullptr;    // [size] or null
};

// grad_x = rstd * (dy*w - mean(dy*w) - xhat * mean(dy*w * xhat)) per row; grad_weight and
// grad_bias sum dy * xhat and dy over rows, block by block.
template <typename T>
void backward_rows(const T* dy, const T* x, const T* weight, const T* mean, const T* rstd, BackwardBuffers out,
                   int64_t rows, int64_t size) {
  T* grad_x = static_cast<T*>(out.grad_x);
  T* grad_weight = static_cast<T*>(out.grad_weight);
  T* grad_bias = static_cast<T*>(out.grad_bias);
  const int64_t blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  const bool need_partials = grad_weight || grad_bias;
  std::vector<T> weight_partials(need_partials && grad_weight ? static_cast<size_t>(blocks * size) : 0);
  std::vector<T> bias_partials(need_partials && grad_bias ? static_cast<size_t>(blocks * size) : 0);
  const T inverse_size = T(1) / static_cast<T>(size);

  cpu::parallel_for(blocks, 1, [&](int64_t block_begin, int64_t block_end) {
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
const T* data_or_null(const Tensor& tensor) {
  return tensor.defined() ? tensor.data_ptr<T>() : nullptr;
}

template <typename T>
void* data_or_null_mutable(const Tensor& tensor) {
  return tensor.defined() ? static_cast<void*>(tensor.data_ptr<T>()) : nullptr;
}

bool fused_path_applies(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  if (!x.device().is_cpu() || (x.dtype() != kFloat32 && x.dtype() != kFloat64)) return false;
  for (const Tensor* affine : {&weight, &bias}) {
    if (affine->defined() && (!affine->device().is_cpu() || affine->dtype() != x.dtype())) return false;
  }
  return true;
}

Tensor fused_layer_norm(const Tensor& x, const Tensor& weight_in, const Tensor& bias_in, int64_t size, double eps) {
  const Tensor input = contiguous(x);
  const Tensor weight = weight_in.defined() ? contiguous(weight_in) : Tensor();
  const Tensor bias = bias_in.defined() ? contiguous(bias_in) : Tensor();
  const int64_t rows = size == 0 ? 0 : input.numel() / size;
  Tensor out = empty(input.shape(), {.dtype = input.dtype()});
  Tensor mean = empty({rows}, {.dtype = input.dtype()});
  Tensor rstd = empty({rows}, {.dtype = input.dtype()});
  auto run_forward = [&]<typename T>() {
    forward_rows<T>(input.data_ptr<T>(), data_or_null<T>(weight), data_or_null<T>(bias), out.data_ptr<T>(),
                    mean.data_ptr<T>(), rstd.data_ptr<T>(), rows, size, eps);
  };
  if (input.dtype() == kFloat32) run_forward.operator()<float>();
  else run_forward.operator()<double>();

  if (any_requires_grad({&input, &weight, &bias})) {
    const bool need_x = input.requires_grad();
    const bool need_weight = weight.defined() && weight.requires_grad();
    const bool need_bias = bias.defined() && bias.requires_grad();
    SavedTensor saved_x(input), saved_weight(weight), saved_mean(mean), saved_rstd(rstd);
    record("layer_norm", {input, weight, bias}, {out},
           [=](const GradientList& g) {
             const Tensor grad_out = contiguous(g[0]);
             const Tensor saved_input = saved_x.unpack("layer_norm");
             const Tensor saved_w = saved_weight.unpack("layer_norm");
             Tensor grad_x = need_x ? empty(saved_input.shape(), {.dtype = saved_input.dtype()}) : Tensor();
             Tensor grad_weight = need_weight ? empty(saved_w.shape(), {.dtype = saved_w.dtype()}) : Tensor();
             Tensor grad_bias = need_bias ? empty(saved_w.defined() ? saved_w.shape() : Shape{size},
                                                  {.dtype = saved_input.dtype()})
                                          : Tensor();
             auto run_backward = [&]<typename T>() {
               BackwardBuffers buffers{data_or_null_mutable<T>(grad_x), data_or_null_mutable<T>(grad_weight),
                                       data_or_null_mutable<T>(grad_bias)};
               backward_rows<T>(grad_out.data_ptr<T>(), saved_input.data_ptr<T>(), data_or_null<T>(saved_w),
                                saved_mean.unpack("layer_norm").data_ptr<T>(),
                                saved_rstd.unpack("layer_norm").data_ptr<T>(), buffers, rows, size);
             };
             if (saved_input.dtype() == kFloat32) run_backward.operator()<float>();
             else run_backward.operator()<double>();
             return GradientList{grad_x, grad_weight, grad_bias};
           });
  }
  return out;
}

void check_arguments(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias) {
  check_defined(x, "layer_norm", "x");
  const int64_t k = static_cast<int64_t>(normalized_shape.size());
  bool fits = k >= 1 && x.dim() >= k && std::equal(normalized_shape.begin(), normalized_shape.end(), x.shape().end() - k);
  if (!fits) {
    fail("layer_norm: expected input whose trailing dims are ", normalized_shape, ", got input of shape ", x.shape());
  }
  if (weight.defined() && weight.shape() != normalized_shape) {
    fail("layer_norm: expected weight of shape ", normalized_shape, ", got ", weight.shape());
  }
  if (bias.defined() && bias.shape() != normalized_shape) {
    fail("layer_norm: expected bias of shape ", normalized_shape, ", got ", bias.shape());
  }
}

}  // namespace

namespace detail {
Tensor layer_norm_composed(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                           double eps) {
  check_arguments(x, normalized_shape, weight, bias);
  std::vector<int64_t> dims;
  for (int64_t d = x.dim() - static_cast<int64_t>(normalized_shape.size()); d < x.dim(); ++d) dims.push_back(d);
  Tensor centered = sub(x, mean(x, dims, /*keepdim=*/true));
  Tensor variance = mean(square(centered), dims, /*keepdim=*/true);
  Tensor out = mul(centered, rsqrt(add(variance, eps)));
  if (weight.defined()) out = mul(out, weight);
  if (bias.defined()) out = add(out, bias);
  return out;
}
}  // namespace detail

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias, double eps) {
  check_arguments(x, normalized_shape, weight, bias);
  if (!fused_path_applies(x, weight, bias)) return detail::layer_norm_composed(x, normalized_shape, weight, bias, eps);
  return fused_layer_norm(x, weight, bias, normalized_shape.numel(), eps);
}

LayerNorm::LayerNorm(Shape normalized_shape, double eps, bool elementwise_affine)
    : Module("LayerNorm"), normalized_shape_(std::move(normalized_shape)), eps_(eps) {
  if (normalized_shape_.empty() || normalized_shape_.numel() <= 0) {
    fail("LayerNorm: expected a non-empty normalized_shape of positive sizes, got ", normalized_shape_);
  }
  if (elementwise_affine) {
    weight_ = register_parameter("weight", constant_parameter(normalized_shape_, 1.0));
    bias_ = register_parameter("bias", constant_parameter(normalized_shape_, 0.0));
  }
}

Tensor LayerNorm::forward(const Tensor& x) { return layer_norm(x, normalized_shape_, weight_, bias_, eps_); }

}  // namespace dtrain
