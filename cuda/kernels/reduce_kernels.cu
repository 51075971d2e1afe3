// CudaBackend::reduce: sum, mean, max and min over any set of dims, any strides.
//
// Each output combines one "row" of input elements (the reduced dims). The cut into pieces and the
// order of every combine are in cuda/kernels/reduce_plan.h (a function of the shapes only, tested
// on the host): a warp per (output, chunk) when a reduced dim is the input's innermost (rows), a
// thread per group of neighbouring outputs and per lane of rows otherwise (columns: the bias
// gradient), with the reduced range cut into chunks whenever the outputs alone would not fill the
// GPU, and the chunks' partials folded by a second kernel. Loads are 16 bytes wide where the layout
// and the alignment allow; that changes how elements are read, never the order they are combined
// in. Floating sums accumulate in double and integer sums in int64, as on the CPU.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

#include "cuda/caching_allocator.h"
#include "cuda/cuda_backend.h"
#include "cuda/kernels/block_reduce.cuh"
#include "cuda/kernels/elementwise.cuh"
#include "cuda/kernels/reduce_plan.h"

namespace dtrain::cuda {
namespace {

// Kernels take the plan and geometry as __grid_constant__: the lambdas and helpers below take them
// by reference, which would otherwise copy them (hundreds of bytes) into every thread's local memory.
struct ReduceGeometry {
  OffsetPlan<2> outputs;  // operands: out, the input at each output's row start
  OffsetPlan<1> reduced;  // the input's reduced dims, from any row start
  bool vector_loads = false;
};

// Elements per group (rows) or outputs per thread (columns) for element type T: vector_width().
template <typename T>
constexpr int kVector = sizeof(T) >= 16 ? 1 : (16 / static_cast<int>(sizeof(T)) < 8 ? 16 / static_cast<int>(sizeof(T)) : 8);

__device__ inline int64_t reduced_offset(const OffsetPlan<1>& plan, int64_t r) {
  if (plan.ndim == 1) return r * plan.strides[0][0];
  int64_t offset[1];
  plan.offsets(r, offset);
  return offset[0];
}

template <typename T>
__device__ inline T load_stored(const char* address) {
  return *reinterpret_cast<const T*>(address);
}

template <typename T, int V>
__device__ inline void load_vector(const char* address, T (&values)[V]) {
  const Pack<T, V> pack = *reinterpret_cast<const Pack<T, V>*>(address);
#pragma unroll
  for (int v = 0; v < V; ++v) values[v] = pack.values[v];
}

// A stored element as the accumulator type (16-bit floats through float).
template <typename T, typename A>
struct ToAccumulator {
  __device__ A operator()(T value) const { return static_cast<A>(Element<T>::load(value)); }
};

template <typename Out, typename A>
__device__ inline void write_result(char* out, A value, bool mean, int64_t reduced_count) {
  if constexpr (std::is_floating_point_v<A>) {
    if (mean) value = value / static_cast<A>(reduced_count);  // 0 / 0 gives NaN for an empty mean, as on the CPU
  }
  *reinterpret_cast<Out*>(out) = Element<Out>::store(static_cast<compute_t<Out>>(value));
}

template <typename Op, typename A>
__device__ inline A warp_tree(A total) {
#pragma unroll
  for (int offset = kWarpTreeFirstOffset; offset > 0; offset /= 2) total = Op::combine(total, shuffle_down(total, offset));
  return total;
}

// Rows: one warp per (output, chunk) piece. partials: [outputs][chunks], or null to write out.
template <typename T, typename Out, typename A, typename Op>
__global__ void __launch_bounds__(kReduceThreads)
    reduce_rows(const __grid_constant__ ReducePlan plan, const __grid_constant__ ReduceGeometry geometry, char* out,
                const char* input, A* partials, bool mean) {
  constexpr int V = kVector<T>;
  const int lane = threadIdx.x % kWarpSize;
  const int64_t stride = geometry.reduced.ndim == 1 ? geometry.reduced.strides[0][0] : 0;
  for (int64_t piece = static_cast<int64_t>(blockIdx.x) * kRowWarpsPerBlock + threadIdx.x / kWarpSize;
       piece < plan.pieces(); piece += static_cast<int64_t>(gridDim.x) * kRowWarpsPerBlock) {
    const int64_t output = piece / plan.chunks, chunk = piece % plan.chunks;
    int64_t offsets[2];
    geometry.outputs.offsets(output, offsets);
    const char* row = input + offsets[1];
    auto load_group = [&](int64_t group, T (&values)[V]) {
      const int64_t first = group_element_begin(plan, group);
      const int count = static_cast<int>(group_element_end(plan, group) - first);
      if (geometry.vector_loads && count == V) {
        load_vector<T, V>(row + first * static_cast<int64_t>(sizeof(T)), values);
      } else if (stride != 0) {
#pragma unroll
        for (int v = 0; v < V; ++v) {
          if (v < count) values[v] = load_stored<T>(row + (first + v) * stride);
        }
      } else {
#pragma unroll
        for (int v = 0; v < V; ++v) {
          if (v < count) values[v] = load_stored<T>(row + reduced_offset(geometry.reduced, first + v));
        }
      }
      return count;
    };
    const A total =
        warp_tree<Op>(row_lane_total<V, A, Op, kWarpSize, T>(plan, chunk, lane, load_group, ToAccumulator<T, A>()));
    if (lane == 0) {
      if (partials != nullptr) partials[output * plan.chunks + chunk] = total;
      else write_result<Out>(out + offsets[0], total, mean, plan.reduced);
    }
  }
}

// Rows, second pass: each output's chunk partials, a block per output, in the planned order.
template <typename Out, typename A, typename Op>
__global__ void __launch_bounds__(kReduceThreads)
    fold_row_partials(const __grid_constant__ ReducePlan fold, const __grid_constant__ OffsetPlan<2> outputs, char* out,
                      const A* partials, bool mean, int64_t reduced_count) {
  __shared__ A warp_totals[kRowWarpsPerBlock];
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  for (int64_t output = blockIdx.x; output < fold.outputs; output += gridDim.x) {
    const A* row = partials + output * fold.reduced;
    auto load_partial = [&](int64_t chunk, A (&values)[1]) {
      values[0] = row[chunk];
      return 1;
    };
    const A total = warp_tree<Op>(
        row_lane_total<1, A, Op, kReduceThreads, A>(fold, 0, threadIdx.x, load_partial, ToAccumulator<A, A>()));
    __syncthreads();  // warp_totals may still be read for the previous output
    if (lane == 0) warp_totals[warp] = total;
    __syncthreads();
    if (threadIdx.x == 0) {
      A folded = warp_totals[0];
      for (int w = 1; w < kRowWarpsPerBlock; ++w) folded = Op::combine(folded, warp_totals[w]);
      int64_t offsets[2];
      outputs.offsets(output, offsets);
      write_result<Out>(out + offsets[0], folded, mean, reduced_count);
    }
  }
}

// Columns: blockDim (32, kColumnLanes); thread x owns output group blockIdx.x * 32 + x, lane y walks
// rows of chunk blockIdx.y. partials: [chunks][outputs], or null to write out.
// At least 3 blocks per SM (at most 85 registers): the loads in flight per SM are what set the speed.
template <typename T, typename Out, typename A, typename Op>
__global__ void __launch_bounds__(kReduceThreads, 3)
    reduce_columns(const __grid_constant__ ReducePlan plan, const __grid_constant__ ReduceGeometry geometry, char* out,
                   const char* input, A* partials, bool mean) {
  constexpr int V = kVector<T>;
  __shared__ A lane_totals[kColumnLanes][kWarpSize][V];
  const int64_t group = static_cast<int64_t>(blockIdx.x) * kWarpSize + threadIdx.x;
  const int64_t chunk = blockIdx.y;
  const bool active = group < plan.groups;
  const int64_t first = output_group_begin(plan, group);
  const int count = active ? static_cast<int>(output_group_end(plan, group) - first) : 0;
  int64_t starts[V];  // where each output's row starts (the vector path reads starts[0] only)
#pragma unroll
  for (int v = 0; v < V; ++v) {
    int64_t offsets[2] = {0, 0};
    if (v < count) geometry.outputs.offsets(first + v, offsets);
    starts[v] = offsets[1];
  }
  A totals[V];
  if (active) {
    auto load_row = [&](int64_t r, T (&values)[V]) {
      const int64_t step = reduced_offset(geometry.reduced, r);
      if (geometry.vector_loads && count == V) {
        load_vector<T, V>(input + starts[0] + step, values);
      } else {
#pragma unroll
        for (int v = 0; v < V; ++v) values[v] = v < count ? load_stored<T>(input + starts[v] + step) : T{};
      }
    };
    column_lane_totals<V, A, Op, T>(plan, chunk, threadIdx.y, load_row, ToAccumulator<T, A>(), totals);
  }
#pragma unroll
  for (int v = 0; v < V; ++v) lane_totals[threadIdx.y][threadIdx.x][v] = active ? totals[v] : Op::template identity<A>();
  __syncthreads();
  if (threadIdx.y != 0 || !active) return;
#pragma unroll
  for (int v = 0; v < V; ++v) {
    if (v >= count) break;
    A total = lane_totals[0][threadIdx.x][v];
    for (int lane = 1; lane < kColumnLanes; ++lane) total = Op::combine(total, lane_totals[lane][threadIdx.x][v]);
    if (partials != nullptr) {
      partials[chunk * plan.outputs + first + v] = total;
    } else {
      int64_t offsets[2];
      geometry.outputs.offsets(first + v, offsets);
      write_result<Out>(out + offsets[0], total, mean, plan.reduced);
    }
  }
}

// Columns, second pass: each output's chunk partials in chunk order.
template <typename Out, typename A, typename Op>
__global__ void fold_column_partials(const __grid_constant__ ReducePlan plan, const __grid_constant__ OffsetPlan<2> outputs,
                                     char* out, const A* partials, bool mean) {
  for (int64_t output = global_thread(); output < plan.outputs; output += grid_stride()) {
    A total = partials[output];
    for (int64_t chunk = 1; chunk < plan.chunks; ++chunk) total = Op::combine(total, partials[chunk * plan.outputs + output]);
    int64_t offsets[2];
    outputs.offsets(output, offsets);
    write_result<Out>(out + offsets[0], total, mean, plan.reduced);
  }
}

// The smallest nonzero stride among the input's dims (size > 1) that are, or are not, reduced.
int64_t smallest_stride(const Tensor& input, const std::vector<bool>& is_reduced, bool reduced) {
  int64_t smallest = INT64_MAX;
  for (int64_t d = 0; d < input.dim(); ++d) {
    if (is_reduced[d] != reduced || input.size(d) <= 1 || input.stride(d) == 0) continue;
    smallest = std::min(smallest, input.stride(d));
  }
  return smallest;
}

bool multiple_of(int64_t value, int64_t bytes) { return value % bytes == 0; }

// Whether every 16-byte (vector * element) load the walk would make is aligned and in one run.
bool can_load_vectors(const ReducePlan& plan, const ReduceGeometry& geometry, const void* input, int64_t element_size) {
  const int64_t bytes = plan.vector * element_size;
  if (plan.vector == 1 || !multiple_of(static_cast<int64_t>(reinterpret_cast<uintptr_t>(input)), bytes)) return false;
  for (int d = 0; d < geometry.outputs.ndim; ++d) {
    const bool inner_columns = plan.walk == ReduceWalk::Columns && d == 0;
    if (!inner_columns && !multiple_of(geometry.outputs.strides[1][d], bytes)) return false;
  }
  if (plan.walk == ReduceWalk::Rows) {  // each group: vector neighbouring elements of one run
    return geometry.reduced.ndim == 1 && geometry.reduced.strides[0][0] == element_size;
  }
  // Columns: a group's outputs are neighbours in the input, and every row step keeps the alignment.
  if (geometry.outputs.ndim == 0 || geometry.outputs.strides[1][0] != element_size ||
      geometry.outputs.sizes[0] % plan.vector != 0) {
    return false;
  }
  for (int d = 0; d < geometry.reduced.ndim; ++d) {
    if (!multiple_of(geometry.reduced.strides[0][d], bytes)) return false;
  }
  return true;
}

template <typename T, typename Out, typename A, typename Op>
void run_reduction(const LaunchContext& context, const Tensor& input, const std::vector<int64_t>& dims, Tensor& out,
                   bool mean, const char* name) {
  const int64_t output_count = out.numel();
  if (output_count == 0) return;
  std::vector<bool> is_reduced(input.dim(), false);
  for (int64_t d : dims) is_reduced[d] = true;

  // Reduced dims by falling stride: the innermost of the walk is the input's innermost.
  std::vector<int64_t> order(dims);
  auto walk_key = [&](int64_t d) { return input.stride(d) == 0 ? INT64_MAX : input.stride(d); };
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return walk_key(a) > walk_key(b); });
  Shape reduced_shape;
  Strides reduced_strides;
  for (int64_t d : order) {
    reduced_shape.push_back(input.size(d));
    reduced_strides.push_back(input.stride(d));
  }
  Tensor reduced_view(std::make_shared<TensorImpl>(input.storage(), reduced_shape, reduced_strides, input.storage_offset(),
                                                   input.dtype()));
  ReduceGeometry geometry;
  geometry.reduced = make_plan<1>(reduced_shape, {&reduced_view});
  const int64_t reduced_count = reduced_shape.numel();
  Shape row_shape = input.shape();
  for (int64_t d : dims) row_shape[d] = 1;
  Tensor row_starts(std::make_shared<TensorImpl>(input.storage(), row_shape, input.strides(), input.storage_offset(),
                                                 input.dtype()));
  geometry.outputs = make_plan<2>(out.shape(), {&out, &row_starts});

  // A warp per output pays when the reduced elements are neighbours and at least a warp's worth.
  const bool walk_rows = reduced_count >= kWarpSize &&
                         smallest_stride(input, is_reduced, true) < smallest_stride(input, is_reduced, false);
  const ReducePlan plan = make_reduce_plan(walk_rows ? ReduceWalk::Rows : ReduceWalk::Columns, output_count, reduced_count,
                                           static_cast<int64_t>(sizeof(T)));
  if (plan.vector != kVector<T>) fail("internal: reduce plan of ", plan.vector, " elements per load for ", input.dtype());
  geometry.vector_loads = can_load_vectors(plan, geometry, input.data(), static_cast<int64_t>(sizeof(T)));

  std::unique_ptr<ScratchBuffer> partials;
  A* partial_data = nullptr;
  if (plan.chunks > 1) {
    partials = std::make_unique<ScratchBuffer>(out.device().index, sizeof(A) * plan.chunks * plan.outputs);
    partial_data = static_cast<A*>(partials->data());
  }
  char* out_data = static_cast<char*>(out.data());
  const char* in_data = static_cast<const char*>(input.data());
  if (walk_rows) {
    reduce_rows<T, Out, A, Op><<<static_cast<unsigned int>(plan.blocks_x), kReduceThreads, 0, context.stream>>>(
        plan, geometry, out_data, in_data, partial_data, mean);
    check_launch(name, input.dtype());
    if (plan.chunks > 1) {
      const ReducePlan fold = row_fold_plan(plan);
      fold_row_partials<Out, A, Op><<<static_cast<unsigned int>(fold.blocks_x), kReduceThreads, 0, context.stream>>>(
          fold, geometry.outputs, out_data, partial_data, mean, reduced_count);
      check_launch(name, input.dtype());
    }
    return;
  }
  const dim3 grid(static_cast<unsigned int>(plan.blocks_x), static_cast<unsigned int>(plan.blocks_y));
  const dim3 block(kWarpSize, kColumnLanes);
  reduce_columns<T, Out, A, Op><<<grid, block, 0, context.stream>>>(plan, geometry, out_data, in_data, partial_data, mean);
  check_launch(name, input.dtype());
  if (plan.chunks > 1) {
    fold_column_partials<Out, A, Op><<<blocks_for(plan.outputs), kThreads, 0, context.stream>>>(plan, geometry.outputs, out_data,
                                                                                               partial_data, mean);
    check_launch(name, input.dtype());
  }
}

}  // namespace

void CudaBackend::reduce(ReductionKind op, const Tensor& input, const std::vector<int64_t>& dims, Tensor& out) {
  LaunchContext context(out.device());
  visit_dtype(input.dtype(), [&]<typename T>() {
    using C = compute_t<T>;
    if (op == ReductionKind::Sum || op == ReductionKind::Mean) {
      const bool mean = op == ReductionKind::Mean;
      if constexpr (std::is_floating_point_v<C>) {
        if (out.dtype() != input.dtype()) fail("internal: reduce of ", input.dtype(), " into ", out.dtype());
        run_reduction<T, T, double, SumOp>(context, input, dims, out, mean, mean ? "mean" : "sum");
      } else {  // integers and bools sum exactly into Int64, as PyTorch
        if (out.dtype() != kInt64) fail("internal: integer sum into ", out.dtype(), " (expected int64)");
        run_reduction<T, int64_t, int64_t, SumOp>(context, input, dims, out, mean, "sum");
      }
      return;
    }
    if constexpr (std::is_same_v<T, bool>) {
      fail("reduce: max and min are not defined for bool tensors");
    } else {
      if (out.dtype() != input.dtype()) fail("internal: reduce of ", input.dtype(), " into ", out.dtype());
      if (op == ReductionKind::Max) run_reduction<T, T, C, MaxOp>(context, input, dims, out, false, "max");
      else run_reduction<T, T, C, MinOp>(context, input, dims, out, false, "min");
    }
  });
}

}  // namespace dtrain::cuda
