// CpuBackend::reduce_with_index: max or min over one dim, with the position of the first extreme
// (a NaN counts as the extreme, as in PyTorch). Rows along a contiguous dim (argmax of logits) are
// scanned twice: a vectorised pass finds the extreme value, a second pass its first position.
// When the dim is not innermost, neighbouring outputs are updated together, row after row.
#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/kernel_views.h"
#include "core/cpu/lane_accumulator.h"
#include "core/cpu/strided_loop.h"

namespace dtrain::cpu {
namespace {

constexpr int64_t kColumnBlock = 256;

template <bool IsMax, typename C>
inline bool is_better(C value, C best) {
  // Strict comparisons keep the first of equal values; a NaN beats everything but an earlier NaN.
  if constexpr (IsMax) return value > best || (value != value && best == best);
  else return value < best || (value != value && best == best);
}

template <typename T, bool IsMax>
int64_t position_of_extreme(const char* start, int64_t step, int64_t length) {
  using C = compute_t<T>;
  if (step == static_cast<int64_t>(sizeof(T))) {
    using Combine = std::conditional_t<IsMax, MaxCombine, MinCombine>;
    LaneAccumulator<T, C, Combine> accumulator;
    accumulator.add_run(start, step, length);
    const C extreme = accumulator.result();
    const T* values = reinterpret_cast<const T*>(start);
    if (extreme != extreme) {
      for (int64_t i = 0; i < length; ++i) {
        if (static_cast<C>(values[i]) != static_cast<C>(values[i])) return i;
      }
    } else {
      for (int64_t i = 0; i < length; ++i) {
        if (static_cast<C>(values[i]) == extreme) return i;
      }
    }
    return 0;  // unreachable: the extreme is one of the values
  }
  C best = load_as<T, C>(start);
  int64_t where = 0;
  for (int64_t i = 1; i < length; ++i) {
    C value = load_as<T, C>(start + i * step);
    if (is_better<IsMax>(value, best)) {
      best = value;
      where = i;
    }
  }
  return where;
}

template <typename T, bool IsMax>
void extreme_with_index(const Tensor& input, int64_t dim, Tensor& values, Tensor& indices) {
  using C = compute_t<T>;
  const int64_t length = input.size(dim);
  const int64_t step = input.stride(dim) * static_cast<int64_t>(sizeof(T));
  const bool walk_rows = is_innermost_dim(input, dim);
  Tensor row_starts = with_sizes_one(input, {dim});
  auto store = [step](char* value_out, char* index_out, const char* row, int64_t where) {
    *reinterpret_cast<T*>(value_out) = *reinterpret_cast<const T*>(row + where * step);
    *reinterpret_cast<int64_t*>(index_out) = where;
  };
  auto on_run = [&](std::array<char*, 3> p, std::array<int64_t, 3> s, int64_t count) {
    if (walk_rows) {
      for (int64_t i = 0; i < count; ++i) {
        const char* row = p[2] + i * s[2];
        store(p[0] + i * s[0], p[1] + i * s[1], row, position_of_extreme<T, IsMax>(row, step, length));
      }
      return;
    }
    C best[kColumnBlock];
    int64_t where[kColumnBlock];
    for (int64_t j0 = 0; j0 < count; j0 += kColumnBlock) {
      const int64_t width = std::min(kColumnBlock, count - j0);
      const char* first = p[2] + j0 * s[2];
      for (int64_t j = 0; j < width; ++j) {
        best[j] = load_as<T, C>(first + j * s[2]);
        where[j] = 0;
      }
      for (int64_t r = 1; r < length; ++r) {
        const char* row = first + r * step;
#pragma omp simd  // vector selects for the comparisons (see lane_accumulator.h)
        for (int64_t j = 0; j < width; ++j) {
          C value = load_as<T, C>(row + j * s[2]);
          bool better = is_better<IsMax>(value, best[j]);
          best[j] = better ? value : best[j];
          where[j] = better ? r : where[j];
        }
      }
      for (int64_t j = 0; j < width; ++j) {
        store(p[0] + (j0 + j) * s[0], p[1] + (j0 + j) * s[1], first + j * s[2], where[j]);
      }
    }
  };
  strided_loop<3>(values.shape(), {&values, &indices, &row_starts}, on_run,
                  std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(length, 1)));
}

}  // namespace

void CpuBackend::reduce_with_index(ReductionKind op, const Tensor& input, int64_t dim, Tensor& values, Tensor& indices) {
  if (op != ReductionKind::Max && op != ReductionKind::Min) fail("internal: reduce_with_index supports max and min only");
  if (input.size(dim) == 0) fail("internal: reduce_with_index over an empty dimension");
  visit_dtype(input.dtype(), [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) {
      fail("reduce_with_index: max and min are not defined for bool tensors");
    } else if (op == ReductionKind::Max) {
      extreme_with_index<T, true>(input, dim, values, indices);
    } else {
      extreme_with_index<T, false>(input, dim, values, indices);
    }
  });
}

}  // namespace dtrain::cpu
