// CpuBackend::softmax and softmax_backward along one dim, any strides.
//
// softmax(x) = exp(x - max) / sum(exp(x - max)); log_softmax(x) = (x - max) - log(sum(...)).
// Subtracting the row maximum keeps exp from overflowing. Sums are accumulated in double through
// a LaneAccumulator, so a row's result does not depend on how threads split the rows.
// Rows along a contiguous dim (the usual last-dim softmax) run as tight per-row loops; when the
// dim is not innermost, a block of neighbouring rows is processed side by side, one step of the
// dim at a time, so memory is still read in order. The unit-stride and log flags are template
// parameters so that every inner loop is branch-free and vectorises.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/fast_exp.h"
#include "core/cpu/kernel_views.h"
#include "core/cpu/lane_accumulator.h"
#include "core/cpu/strided_loop.h"

namespace dtrain::cpu {
namespace {

constexpr int64_t kBlock = 256;  // exp values buffered per row step, or rows processed side by side

// Element i of a run: Unit means step is sizeof(T), known at compile time so loops vectorise.
template <typename T, bool Unit>
inline T& at(char* base, int64_t step, int64_t i) {
  if constexpr (Unit) return reinterpret_cast<T*>(base)[i];
  else return *reinterpret_cast<T*>(base + i * step);
}
template <typename T, bool Unit>
inline compute_t<T> value_at(const char* base, int64_t step, int64_t i) {
  if constexpr (Unit) return static_cast<compute_t<T>>(reinterpret_cast<const T*>(base)[i]);
  else return static_cast<compute_t<T>>(*reinterpret_cast<const T*>(base + i * step));
}

// float and double outputs can hold exp(x - max) between passes; 16-bit ones recompute it.
template <typename T>
constexpr bool kOutputHoldsCompute = std::is_same_v<T, compute_t<T>>;

template <typename T, bool Unit, bool Log>
void softmax_row(const char* in, int64_t in_step, char* out, int64_t out_step, int64_t length) {
  using C = compute_t<T>;
  LaneAccumulator<T, C, MaxCombine> max_accumulator;
  max_accumulator.add_run(in, in_step, length);
  const C row_max = max_accumulator.result();

  LaneAccumulator<C, double, SumCombine> sum_accumulator;
  C exps[kBlock];
  for (int64_t i0 = 0; i0 < length; i0 += kBlock) {
    const int64_t width = std::min(kBlock, length - i0);
    for (int64_t j = 0; j < width; ++j) exps[j] = fast_exp(value_at<T, Unit>(in, in_step, i0 + j) - row_max);
    if constexpr (!Log && kOutputHoldsCompute<T>) {
      for (int64_t j = 0; j < width; ++j) at<T, Unit>(out, out_step, i0 + j) = exps[j];
    }
    sum_accumulator.add_run(reinterpret_cast<const char*>(exps), sizeof(C), width);
  }
  const double sum = sum_accumulator.result();

  if constexpr (Log) {
    const C log_sum = static_cast<C>(std::log(sum));
    for (int64_t i = 0; i < length; ++i) {
      at<T, Unit>(out, out_step, i) = static_cast<T>((value_at<T, Unit>(in, in_step, i) - row_max) - log_sum);
    }
  } else if constexpr (kOutputHoldsCompute<T>) {
    const C scale = static_cast<C>(1.0 / sum);
    for (int64_t i = 0; i < length; ++i) at<T, Unit>(out, out_step, i) *= scale;
  } else {
    const C scale = static_cast<C>(1.0 / sum);
    for (int64_t i = 0; i < length; ++i) {
      at<T, Unit>(out, out_step, i) = static_cast<T>(fast_exp(value_at<T, Unit>(in, in_step, i) - row_max) * scale);
    }
  }
}

// width rows side by side: row j starts at in + j * in_column; step r of the dim is r * in_step on.
template <typename T, bool Unit, bool Log>
void softmax_columns(const char* in, int64_t in_column, int64_t in_step, char* out, int64_t out_column,
                     int64_t out_step, int64_t width, int64_t length) {
  using C = compute_t<T>;
  C row_max[kBlock];
  double sum[kBlock];
  for (int64_t j = 0; j < width; ++j) {
    row_max[j] = MaxCombine::identity<C>();
    sum[j] = 0.0;
  }
  for (int64_t r = 0; r < length; ++r) {
    const char* x = in + r * in_step;
#pragma omp simd
    for (int64_t j = 0; j < width; ++j) row_max[j] = MaxCombine::combine(row_max[j], value_at<T, Unit>(x, in_column, j));
  }
  for (int64_t r = 0; r < length; ++r) {
    const char* x = in + r * in_step;
    char* y = out + r * out_step;
    for (int64_t j = 0; j < width; ++j) {
      C e = fast_exp(value_at<T, Unit>(x, in_column, j) - row_max[j]);
      if constexpr (!Log && kOutputHoldsCompute<T>) at<T, Unit>(y, out_column, j) = e;
      sum[j] += e;
    }
  }
  C factor[kBlock];  // 1 / sum for softmax, log(sum) for log_softmax
  for (int64_t j = 0; j < width; ++j) factor[j] = static_cast<C>(Log ? std::log(sum[j]) : 1.0 / sum[j]);
  for (int64_t r = 0; r < length; ++r) {
    const char* x = in + r * in_step;
    char* y = out + r * out_step;
    for (int64_t j = 0; j < width; ++j) {
      C result;
      if constexpr (Log) result = (value_at<T, Unit>(x, in_column, j) - row_max[j]) - factor[j];
      else if constexpr (kOutputHoldsCompute<T>) result = at<T, Unit>(y, out_column, j) * factor[j];
      else result = fast_exp(value_at<T, Unit>(x, in_column, j) - row_max[j]) * factor[j];
      at<T, Unit>(y, out_column, j) = static_cast<T>(result);
    }
  }
}

// softmax: dx = y * (g - sum(g * y)); log_softmax: dx = g - exp(y) * sum(g).
template <typename T, bool Unit, bool Log>
void softmax_backward_row(const char* g, int64_t g_step, const char* y, int64_t y_step, char* dx, int64_t dx_step,
                          int64_t length) {
  using C = compute_t<T>;
  LaneAccumulator<C, double, SumCombine> accumulator;
  C terms[kBlock];
  for (int64_t i0 = 0; i0 < length; i0 += kBlock) {
    const int64_t width = std::min(kBlock, length - i0);
    for (int64_t j = 0; j < width; ++j) {
      terms[j] = value_at<T, Unit>(g, g_step, i0 + j);
      if constexpr (!Log) terms[j] *= value_at<T, Unit>(y, y_step, i0 + j);
    }
    accumulator.add_run(reinterpret_cast<const char*>(terms), sizeof(C), width);
  }
  const C total = static_cast<C>(accumulator.result());
  for (int64_t i = 0; i < length; ++i) {
    C gradient = value_at<T, Unit>(g, g_step, i);
    C output = value_at<T, Unit>(y, y_step, i);
    C result;
    if constexpr (Log) result = gradient - fast_exp(output) * total;
    else result = output * (gradient - total);
    at<T, Unit>(dx, dx_step, i) = static_cast<T>(result);
  }
}

template <typename T, bool Unit, bool Log>
void softmax_backward_columns(const char* g, int64_t g_column, int64_t g_step, const char* y, int64_t y_column,
                              int64_t y_step, char* dx, int64_t dx_column, int64_t dx_step, int64_t width,
                              int64_t length) {
  using C = compute_t<T>;
  double sum[kBlock];
  for (int64_t j = 0; j < width; ++j) sum[j] = 0.0;
  for (int64_t r = 0; r < length; ++r) {
    const char* g_row = g + r * g_step;
    const char* y_row = y + r * y_step;
    for (int64_t j = 0; j < width; ++j) {
      C term = value_at<T, Unit>(g_row, g_column, j);
      if constexpr (!Log) term *= value_at<T, Unit>(y_row, y_column, j);
      sum[j] += term;
    }
  }
  for (int64_t r = 0; r < length; ++r) {
    const char* g_row = g + r * g_step;
    const char* y_row = y + r * y_step;
    char* dx_row = dx + r * dx_step;
    for (int64_t j = 0; j < width; ++j) {
      C gradient = value_at<T, Unit>(g_row, g_column, j);
      C output = value_at<T, Unit>(y_row, y_column, j);
      C total = static_cast<C>(sum[j]);
      C result;
      if constexpr (Log) result = gradient - fast_exp(output) * total;
      else result = output * (gradient - total);
      at<T, Unit>(dx_row, dx_column, j) = static_cast<T>(result);
    }
  }
}

// Calls fn.template operator()<Unit, Log>() with the runtime flags made compile-time, so that
// every inner loop is branch-free (a branch in a loop keeps GCC from vectorising it).
template <typename Fn>
void with_flags(bool unit, bool log, Fn&& fn) {
  if (unit) {
    if (log) fn.template operator()<true, true>();
    else fn.template operator()<true, false>();
  } else {
    if (log) fn.template operator()<false, true>();
    else fn.template operator()<false, false>();
  }
}

template <typename Fn>
void visit_floating(DType dtype, const char* op, Fn&& fn) {
  visit_dtype(dtype, [&]<typename T>() {
    if constexpr (std::is_floating_point_v<compute_t<T>>) fn.template operator()<T>();
    else fail("internal: ", op, " kernel called on ", dtype);
  });
}

}  // namespace

void CpuBackend::softmax(const Tensor& input, int64_t dim, bool log, Tensor& out) {
  if (input.numel() == 0) return;
  visit_floating(input.dtype(), "softmax", [&]<typename T>() {
    constexpr int64_t kSize = sizeof(T);
    const int64_t length = input.size(dim);
    const int64_t in_step = input.stride(dim) * kSize, out_step = out.stride(dim) * kSize;
    const bool walk_rows = is_innermost_dim(input, dim);
    Tensor in_rows = with_sizes_one(input, {dim}), out_rows = with_sizes_one(out, {dim});
    auto on_run = [&](std::array<char*, 2> p, std::array<int64_t, 2> s, int64_t count) {
      if (walk_rows) {
        with_flags(in_step == kSize && out_step == kSize, log, [&]<bool Unit, bool Log>() {
          for (int64_t i = 0; i < count; ++i) {
            softmax_row<T, Unit, Log>(p[1] + i * s[1], in_step, p[0] + i * s[0], out_step, length);
          }
        });
        return;
      }
      with_flags(s[0] == kSize && s[1] == kSize, log, [&]<bool Unit, bool Log>() {
        for (int64_t j0 = 0; j0 < count; j0 += kBlock) {
          softmax_columns<T, Unit, Log>(p[1] + j0 * s[1], s[1], in_step, p[0] + j0 * s[0], s[0], out_step,
                                        std::min(kBlock, count - j0), length);
        }
      });
    };
    strided_loop<2>(out_rows.shape(), {&out_rows, &in_rows}, on_run, std::max<int64_t>(1, kParallelGrain / length));
  });
}

void CpuBackend::softmax_backward(const Tensor& grad_output, const Tensor& output, int64_t dim, bool log,
                                  Tensor& grad_input) {
  if (output.numel() == 0) return;
  visit_floating(output.dtype(), "softmax_backward", [&]<typename T>() {
    constexpr int64_t kSize = sizeof(T);
    const int64_t length = output.size(dim);
    const int64_t g_step = grad_output.stride(dim) * kSize, y_step = output.stride(dim) * kSize;
    const int64_t dx_step = grad_input.stride(dim) * kSize;
    const bool walk_rows = is_innermost_dim(output, dim);
    Tensor g_rows = with_sizes_one(grad_output, {dim}), y_rows = with_sizes_one(output, {dim});
    Tensor dx_rows = with_sizes_one(grad_input, {dim});
    auto on_run = [&](std::array<char*, 3> p, std::array<int64_t, 3> s, int64_t count) {
      if (walk_rows) {
        with_flags(g_step == kSize && y_step == kSize && dx_step == kSize, log, [&]<bool Unit, bool Log>() {
          for (int64_t i = 0; i < count; ++i) {
            softmax_backward_row<T, Unit, Log>(p[1] + i * s[1], g_step, p[2] + i * s[2], y_step, p[0] + i * s[0],
                                               dx_step, length);
          }
        });
        return;
      }
      with_flags(s[0] == kSize && s[1] == kSize && s[2] == kSize, log, [&]<bool Unit, bool Log>() {
        for (int64_t j0 = 0; j0 < count; j0 += kBlock) {
          softmax_backward_columns<T, Unit, Log>(p[1] + j0 * s[1], s[1], g_step, p[2] + j0 * s[2], s[2], y_step,
                                                 p[0] + j0 * s[0], s[0], dx_step, std::min(kBlock, count - j0), length);
        }
      });
    };
    strided_loop<3>(dx_rows.shape(), {&dx_rows, &g_rows, &y_rows}, on_run, std::max<int64_t>(1, kParallelGrain / length));
  });
}

}  // namespace dtrain::cpu
