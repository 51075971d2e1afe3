// CpuBackend::reduce: sum, mean, max and min over any set of dims of a tensor with any strides.
//
// Each output element is the combination of one "row" of input elements (the reduced dims). Two
// walks cover the layouts that matter:
// - rows: the reduced dims include the input's innermost one (row sums, a full reduction), so each
//   output reads its own contiguous runs into a LaneAccumulator;
// - columns: a kept dim is innermost (the bias gradient: sum over dim 0 of [rows, cols]), so a
//   block of neighbouring outputs is accumulated together, row after row, in a vectorised loop.
// Work is cut into tasks of outputs and, when there are too few outputs to keep threads busy,
// the reduced range is also cut into chunks whose partial results are folded in chunk order.
// The cut depends only on the shapes, so results never depend on the thread count.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/kernel_views.h"
#include "core/cpu/lane_accumulator.h"
#include "core/cpu/strided_loop.h"

namespace dtrain::cpu {
namespace {

constexpr int64_t kColumnBlock = 256;    // outputs accumulated side by side when walking columns
constexpr int64_t kTargetPieces = 64;    // enough independent pieces for any thread count
constexpr int64_t kMinChunkWork = 16384;  // elements: a smaller split of the reduced range costs more than it saves
constexpr int64_t kMinChunkLength = 64;   // reduced elements per chunk: splitting short rows is pointless

struct ReduceSchedule {
  int64_t outputs_per_task = 1;
  int64_t tasks = 1;
  int64_t chunks = 1;   // pieces each task's reduced range is cut into
  int64_t grain = 1;    // (task, chunk) pieces per parallel_for step
};

ReduceSchedule make_schedule(int64_t outputs, int64_t reduced, bool walk_columns) {
  ReduceSchedule schedule;
  int64_t per_output = std::max<int64_t>(reduced, 1);
  schedule.outputs_per_task = (kParallelGrain + per_output - 1) / per_output;
  if (walk_columns) schedule.outputs_per_task = std::max(schedule.outputs_per_task, kColumnBlock);
  schedule.outputs_per_task = std::clamp<int64_t>(schedule.outputs_per_task, 1, outputs);
  schedule.tasks = (outputs + schedule.outputs_per_task - 1) / schedule.outputs_per_task;
  if (schedule.tasks < kTargetPieces) {
    int64_t task_work = schedule.outputs_per_task * reduced;
    int64_t most_chunks = std::max<int64_t>(1, std::min(task_work / kMinChunkWork, reduced / kMinChunkLength));
    schedule.chunks = std::clamp<int64_t>(kTargetPieces / schedule.tasks, 1, most_chunks);
  }
  int64_t piece_work = std::max<int64_t>(1, schedule.outputs_per_task * per_output / schedule.chunks);
  schedule.grain = std::max<int64_t>(1, kParallelGrain / piece_work);
  return schedule;
}

// The smallest nonzero stride among the input's dims (size > 1) that are (or are not) reduced.
int64_t smallest_stride(const Tensor& input, const std::vector<bool>& is_reduced, bool reduced) {
  int64_t smallest = INT64_MAX;
  for (int64_t d = 0; d < input.dim(); ++d) {
    if (is_reduced[d] != reduced || input.size(d) <= 1 || input.stride(d) == 0) continue;
    smallest = std::min(smallest, input.stride(d));
  }
  return smallest;
}

// T: input element, Out: output element, A: accumulator (double for floating sums, int64 for
// integer sums, the compute type for max and min).
template <typename T, typename Out, typename A, typename Combine>
class Reduction {
 public:
  Reduction(bool mean, const Tensor& input, const std::vector<int64_t>& dims, Tensor& out) : mean_(mean) {
    row_starts_ = with_sizes_one(input, dims);
    std::vector<bool> is_reduced(input.dim(), false);
    for (int64_t d : dims) is_reduced[d] = true;

    // Reduced dims ordered by falling stride, so that the innermost one of the walk is the input's
    // innermost and contiguous runs merge (a transposed input then still reads memory in order).
    std::vector<int64_t> order(dims);
    auto walk_key = [&](int64_t d) { return input.stride(d) == 0 ? INT64_MAX : input.stride(d); };
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return walk_key(a) > walk_key(b); });
    Shape reduced_shape;
    Strides reduced_strides;
    for (int64_t d : order) {
      reduced_shape.push_back(input.size(d));
      reduced_strides.push_back(input.stride(d));
    }
    reduced_count_ = reduced_shape.numel();
    reduced_plan_ = plan_loop<1>(reduced_shape, {&reduced_strides}, {static_cast<int64_t>(sizeof(T))});
    output_plan_ = plan_loop<2>(out.shape(), {&out.strides(), &row_starts_.strides()},
                                {static_cast<int64_t>(sizeof(Out)), static_cast<int64_t>(sizeof(T))});
    bases_ = {static_cast<char*>(out.data()), static_cast<char*>(row_starts_.data())};
    outputs_ = out.numel();
    walk_rows_ = reduced_count_ > 1 && smallest_stride(input, is_reduced, true) < smallest_stride(input, is_reduced, false);
  }

  void run() {
    if (outputs_ == 0) return;
    ReduceSchedule schedule = make_schedule(outputs_, reduced_count_, !walk_rows_);
    if (schedule.chunks == 1) {
      parallel_for(schedule.tasks, schedule.grain, [&](int64_t begin, int64_t end) {
        for (int64_t task = begin; task < end; ++task) {
          int64_t first = task * schedule.outputs_per_task;
          process(first, std::min(outputs_, first + schedule.outputs_per_task), 0, reduced_count_,
                  [this](int64_t, char* out, A value) { write(out, value); });
        }
      });
      return;
    }
    // Partial results per chunk, then folded in chunk order.
    const int64_t chunks = schedule.chunks;
    std::vector<A> partials(static_cast<size_t>(outputs_ * chunks));
    parallel_for(schedule.tasks * chunks, schedule.grain, [&](int64_t begin, int64_t end) {
      for (int64_t piece = begin; piece < end; ++piece) {
        int64_t task = piece / chunks, chunk = piece % chunks;
        int64_t first = task * schedule.outputs_per_task;
        A* chunk_partials = partials.data() + chunk * outputs_;
        process(first, std::min(outputs_, first + schedule.outputs_per_task), reduced_count_ * chunk / chunks,
                reduced_count_ * (chunk + 1) / chunks,
                [chunk_partials](int64_t output, char*, A value) { chunk_partials[output] = value; });
      }
    });
    parallel_for(outputs_, std::max<int64_t>(1, kParallelGrain / chunks), [&](int64_t begin, int64_t end) {
      int64_t output = begin;
      auto fold = [&](std::array<char*, 2> p, std::array<int64_t, 2> s, int64_t count) {
        for (int64_t i = 0; i < count; ++i, ++output) {
          A total = partials[output];
          for (int64_t chunk = 1; chunk < chunks; ++chunk) total = Combine::combine(total, partials[chunk * outputs_ + output]);
          write(p[0] + i * s[0], total);
        }
      };
      run_plan_range<2>(output_plan_, bases_, begin, end, fold);
    });
  }

 private:
  // Reduces outputs [first, last) over the reduced range [begin, end); sink(output, address, value).
  template <typename Sink>
  void process(int64_t first, int64_t last, int64_t begin, int64_t end, Sink sink) const {
    int64_t output = first;
    auto on_run = [&](std::array<char*, 2> p, std::array<int64_t, 2> s, int64_t count) {
      if (walk_rows_) {
        for (int64_t i = 0; i < count; ++i) sink(output + i, p[0] + i * s[0], reduce_row(p[1] + i * s[1], begin, end));
      } else {
        A totals[kColumnBlock];
        for (int64_t j0 = 0; j0 < count; j0 += kColumnBlock) {
          int64_t width = std::min(kColumnBlock, count - j0);
          reduce_columns(p[1] + j0 * s[1], s[1], width, begin, end, totals);
          for (int64_t j = 0; j < width; ++j) sink(output + j0 + j, p[0] + (j0 + j) * s[0], totals[j]);
        }
      }
      output += count;
    };
    run_plan_range<2>(output_plan_, bases_, first, last, on_run);
  }

  A reduce_row(char* start, int64_t begin, int64_t end) const {
    LaneAccumulator<T, A, Combine> accumulator;
    if (begin < end && reduced_plan_.ndim == 1) {  // one run: skip the multi-dim walk (short rows are common)
      accumulator.add_run(start + begin * reduced_plan_.strides[0][0], reduced_plan_.strides[0][0], end - begin);
    } else if (begin < end) {
      auto add = [&](std::array<char*, 1> p, std::array<int64_t, 1> s, int64_t count) { accumulator.add_run(p[0], s[0], count); };
      run_plan_range<1>(reduced_plan_, {start}, begin, end, add);
    }
    return accumulator.result();
  }

  // totals[j] = combination over the reduced range of the column at start + j * column_stride.
  void reduce_columns(char* start, int64_t column_stride, int64_t width, int64_t begin, int64_t end, A* totals) const {
    for (int64_t j = 0; j < width; ++j) totals[j] = Combine::template identity<A>();
    if (begin >= end) return;
    auto add_rows = [&](std::array<char*, 1> p, std::array<int64_t, 1> s, int64_t count) {
      for (int64_t r = 0; r < count; ++r) {
        const char* row = p[0] + r * s[0];
        if (column_stride == static_cast<int64_t>(sizeof(T))) {
          const T* values = reinterpret_cast<const T*>(row);
#pragma omp simd  // lets max and min compile to vector selects (see lane_accumulator.h)
          for (int64_t j = 0; j < width; ++j) {
            totals[j] = Combine::combine(totals[j], static_cast<A>(static_cast<compute_t<T>>(values[j])));
          }
        } else {
          for (int64_t j = 0; j < width; ++j) totals[j] = Combine::combine(totals[j], load_as<T, A>(row + j * column_stride));
        }
      }
    };
    run_plan_range<1>(reduced_plan_, {start}, begin, end, add_rows);
  }

  void write(char* out, A value) const {
    if constexpr (std::is_floating_point_v<A>) {
      if (mean_) value = value / static_cast<A>(reduced_count_);  // 0 / 0 gives NaN for an empty mean, as PyTorch
    }
    *reinterpret_cast<Out*>(out) = static_cast<Out>(static_cast<compute_t<Out>>(value));
  }

  bool mean_;
  bool walk_rows_ = false;
  Tensor row_starts_;  // the input with reduced dims of size 1: element i is where output i's row begins
  int64_t reduced_count_ = 0;
  int64_t outputs_ = 0;
  LoopPlan<1> reduced_plan_;
  LoopPlan<2> output_plan_;  // operands: out, row_starts_
  std::array<char*, 2> bases_{};
};

template <typename T, typename Out, typename A, typename Combine>
void run_reduction(bool mean, const Tensor& input, const std::vector<int64_t>& dims, Tensor& out) {
  Reduction<T, Out, A, Combine>(mean, input, dims, out).run();
}

}  // namespace

void CpuBackend::reduce(ReductionKind op, const Tensor& input, const std::vector<int64_t>& dims, Tensor& out) {
  visit_dtype(input.dtype(), [&]<typename T>() {
    using C = compute_t<T>;
    if (op == ReductionKind::Sum || op == ReductionKind::Mean) {
      bool mean = op == ReductionKind::Mean;
      if constexpr (std::is_floating_point_v<C>) {
        if (out.dtype() != input.dtype()) fail("internal: reduce of ", input.dtype(), " into ", out.dtype());
        run_reduction<T, T, double, SumCombine>(mean, input, dims, out);
      } else {  // integers and bools sum exactly into Int64, as PyTorch
        if (out.dtype() != kInt64) fail("internal: integer sum into ", out.dtype(), " (expected int64)");
        run_reduction<T, int64_t, int64_t, SumCombine>(mean, input, dims, out);
      }
      return;
    }
    if constexpr (std::is_same_v<T, bool>) {
      fail("reduce: max and min are not defined for bool tensors");
    } else {
      if (out.dtype() != input.dtype()) fail("internal: reduce of ", input.dtype(), " into ", out.dtype());
      if (op == ReductionKind::Max) run_reduction<T, T, C, MaxCombine>(false, input, dims, out);
      else run_reduction<T, T, C, MinCombine>(false, input, dims, out);
    }
  });
}

}  // namespace dtrain::cpu
