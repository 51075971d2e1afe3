#include "layers/causal_softmax.h"

#include <algorithm>
#include <cstdint>
#include <limits>

#include "core/cpu/fast_exp.h"
#include "core/cpu/lane_accumulator.h"
#include "core/cpu/strided_loop.h"
#include "core/graph.h"
#include "core/ops/elementwise.h"
#include "core/ops/factory.h"
#include "core/ops/softmax.h"
#include "core/ops/view.h"
#include "layers/attention.h"

namespace dtrain {

namespace {

// As in core/cpu/softmax_kernels.cpp: exponentials are summed in runs of this many, so that
// every value lands on the same accumulator lane as there and the sums agree to the bit. (The
// masked columns add only zeros there, which change no sum.)
constexpr int64_t kBlock = 256;

// Row i of one [T, T] matrix: softmax over the visible = i + 1 first columns, zeros after.
template <typename T>
void forward_row(const T* x, T* y, int64_t visible, int64_t length) {
  cpu::LaneAccumulator<T, T, cpu::MaxCombine> max_accumulator;
  max_accumulator.add_run(reinterpret_cast<const char*>(x), sizeof(T), visible);
  const T row_max = max_accumulator.result();
  cpu::LaneAccumulator<T, double, cpu::SumCombine> sum_accumulator;
  for (int64_t i0 = 0; i0 < visible; i0 += kBlock) {
    const int64_t width = std::min(kBlock, visible - i0);
    for (int64_t j = 0; j < width; ++j) y[i0 + j] = cpu::fast_exp(x[i0 + j] - row_max);
    sum_accumulator.add_run(reinterpret_cast<const char*>(y + i0), sizeof(T), width);
  }
  const T scale = static_cast<T>(1.0 / sum_accumulator.result());
  for (int64_t i = 0; i < visible; ++i) y[i] *= scale;
  std::fill(y + visible, y + length, T(0));
}

// dx = y * (g - sum(g * y)) over the visible columns; the masked ones get no gradient.
template <typename T>
void backward_row(const T* g, const T* y, T* dx, int64_t visible, int64_t length) {
  cpu::LaneAccumulator<T, double, cpu::SumCombine> accumulator;
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
  cpu::parallel_for(rows, std::max<int64_t>(1, cpu::kParallelGrain / length), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) row_fn(r * length, r % length + 1);
  });
}

template <typename Fn>
void with_floating_type(DType dtype, Fn&& fn) {
  if (dtype == kFloat32) fn.template operator()<float>();
  else fn.template operator()<double>();
}

Tensor fused_backward(const Tensor& grad_output, const Tensor& output) {
  const Tensor g = contiguous(grad_output.dtype() == output.dtype() ? grad_output : grad_output.to(output.dtype()));
  Tensor grad_input = empty(output.shape(), {.dtype = output.dtype()});
  const int64_t length = output.size(-1);
  with_floating_type(output.dtype(), [&]<typename T>() {
    const T* gs = g.data_ptr<T>();
    const T* ys = output.data_ptr<T>();
    T* dxs = grad_input.data_ptr<T>();
    for_each_row(output.numel() / length, length, [&](int64_t offset, int64_t visible) {
      backward_row<T>(gs + offset, ys + offset, dxs + offset, visible, length);
    });
  });
  return grad_input;
}

}  // namespace

namespace detail {
Tensor causal_softmax_composed(const Tensor& scores) {
  const Tensor masked = masked_fill(scores, causal_mask(scores.size(-1), scores.device()),
                                    -std::numeric_limits<double>::infinity());
  return softmax(masked, -1);
}
}  // namespace detail

Tensor causal_softmax(const Tensor& scores) {
  check_defined(scores, "causal_softmax", "scores");
  if (scores.dim() < 2 || scores.size(-1) != scores.size(-2)) {
    fail("causal_softmax: expected scores [..., T, T], got shape ", scores.shape());
  }
  const bool fused = scores.device().is_cpu() && (scores.dtype() == kFloat32 || scores.dtype() == kFloat64);
  if (!fused || scores.numel() == 0) return detail::causal_softmax_composed(scores);

  const Tensor input = contiguous(scores);
  Tensor out = empty(input.shape(), {.dtype = input.dtype()});
  const int64_t length = input.size(-1);
  with_floating_type(input.dtype(), [&]<typename T>() {
    const T* xs = input.data_ptr<T>();
    T* ys = out.data_ptr<T>();
    for_each_row(input.numel() / length, length, [&](int64_t offset, int64_t visible) {
      forward_row<T>(xs + offset, ys + offset, visible, length);
    });
  });
  if (any_requires_grad({&input})) {
    SavedTensor saved_out(out);
    record("causal_softmax", {input}, {out}, [saved_out](const GradientList& g) {
      return GradientList{fused_backward(g[0], saved_out.unpack("causal_softmax"))};
    });
  }
  return out;
}

}  // namespace dtrain
