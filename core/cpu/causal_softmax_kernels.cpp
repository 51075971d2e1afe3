// CpuBackend::causal_softmax and its backward. One pass each way over the visible columns of each
// row: the masked half is never read or exponentiated, and its outputs are written as zeros.
// Float32 and float64 run natively; 16-bit scores are widened to float32 and rounded once at the end.
#include <algorithm>
#include <cstdint>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/float_dispatch.h"
#include "core/cpu/fast_exp.h"
#include "core/cpu/lane_accumulator.h"
#include "core/cpu/strided_loop.h"
#include "core/error.h"
#include "core/ops/factory.h"

namespace dtrain::cpu {

namespace {

// As in softmax_kernels.cpp: exponentials are summed in runs of this many, so that every value
// lands on the same accumulator lane as there and the sums agree to the bit with
// softmax(masked_fill(scores, mask, -inf)) (whose masked columns add only zeros).
constexpr int64_t kBlock = 256;

// Row i of one [T, T] matrix: softmax over the visible = i + 1 first columns, zeros after.
template <typename T>
void forward_row(const T* x, T* y, int64_t visible, int64_t length) {
  LaneAccumulator<T, T, MaxCombine> max_accumulator;
  max_accumulator.add_run(reinterpret_cast<const char*>(x), sizeof(T), visible);
  const T row_max = max_accumulator.result();
  LaneAccumulator<T, double, SumCombine> sum_accumulator;
  for (int64_t i0 = 0; i0 < visible; i0 += kBlock) {
    const int64_t width = std::min(kBlock, visible - i0);
    for (int64_t j = 0; j < width; ++j) y[i0 + j] = fast_exp(x[i0 + j] - row_max);
    sum_accumulator.add_run(reinterpret_cast<const char*>(y + i0), sizeof(T), width);
  }
  const T scale = static_cast<T>(1.0 / sum_accumulator.result());
  for (int64_t i = 0; i < visible; ++i) y[i] *= scale;
  std::fill(y + visible, y + length, T(0));
}

// dx = y * (g - sum(g * y)) over the visible columns; the masked ones get no gradient.
template <typename T>
void backward_row(const T* g, const T* y, T* dx, int64_t visible, int64_t length) {
  LaneAccumulator<T, double, SumCombine> accumulator;
  T terms[kBlock];
  for (int64_t i0 = 0; i0 < visible; i0 += kBlock) {
    const int64_t width = std::min(kBlock, visible - i0);
    for (int64_t j = 0; j < width; ++j) terms[j] = g[i0 + j] * y[i0 + j];
    accumulator.add_run(reinterpret_cast<const char*>(terms), sizeof(T), width);
  }
  const T total = static_cast<T>(accumulator.result());
  for (int64_t i = 0; i < visible; ++i) dx[i] = y[i] * (g[i] - total);
  std::fill(dx + visible, dx + length, T(0));
}

// Every row of contiguous [..., T, T] data; row r is row r % T of its matrix.
template <typename RowFn>
void for_each_row(int64_t rows, int64_t length, RowFn row_fn) {
  parallel_for(rows, std::max<int64_t>(1, kParallelGrain / length), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) row_fn(r * length, r % length + 1);
  });
}

bool is_16_bit(DType dtype) { return dtype == kBFloat16 || dtype == kFloat16; }


}  // namespace

void CpuBackend::causal_softmax(const Tensor& scores, Tensor& out) {
  if (scores.numel() == 0) return;
  if (is_16_bit(scores.dtype())) {
    Tensor wide = empty(scores.shape(), {.dtype = kFloat32});
    causal_softmax(scores.to(kFloat32), wide);
    copy(wide, out);
    return;
  }
  const int64_t length = scores.size(-1);
  visit_float32_or_float64(scores.dtype(), "causal_softmax", [&]<typename T>() {
    const T* xs = scores.data_ptr<T>();
    T* ys = out.data_ptr<T>();
    for_each_row(scores.numel() / length, length, [&](int64_t offset, int64_t visible) {
      forward_row<T>(xs + offset, ys + offset, visible, length);
    });
  });
}

void CpuBackend::causal_softmax_backward(const Tensor& grad_output, const Tensor& output, Tensor& grad_input) {
  if (output.numel() == 0) return;
  if (is_16_bit(output.dtype())) {
    Tensor wide = empty(output.shape(), {.dtype = kFloat32});
    causal_softmax_backward(grad_output.to(kFloat32), output.to(kFloat32), wide);
    copy(wide, grad_input);
    return;
  }
  const int64_t length = output.size(-1);
  visit_float32_or_float64(output.dtype(), "causal_softmax_backward", [&]<typename T>() {
    const T* gs = grad_output.data_ptr<T>();
    const T* ys = output.data_ptr<T>();
    T* dxs = grad_input.data_ptr<T>();
    for_each_row(output.numel() / length, length, [&](int64_t offset, int64_t visible) {
      backward_row<T>(gs + offset, ys + offset, dxs + offset, visible, length);
    });
  });
}

}  // namespace dtrain::cpu
