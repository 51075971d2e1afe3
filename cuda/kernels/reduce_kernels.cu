// CudaBackend::reduce: sum, mean, max and min over any set of dims, any strides.
//
// Each output combines one "row" of input elements (the reduced dims). As on the CPU
// (core/cpu/reduce_kernels.cpp) there are two walks:
// - rows: a reduced dim is the input's innermost, so a block reduces one output, its threads
//   reading neighbouring elements (coalesced), then combining in a shuffle tree;
// - columns: a kept dim is innermost (the bias gradient: sum over dim 0 of [rows, cols]), so each
//   thread reduces one output and neighbouring threads read neighbouring columns.
// When there are few outputs and long rows, the reduced range is also cut into chunks (grid.y)
// whose partial results a second kernel folds in chunk order. The cut depends only on the shapes,
// so results are the same run to run. Floating sums accumulate in double and integer sums in
// int64, as on the CPU.
#include "cuda/caching_allocator.h"
#include "cuda/cuda_backend.h"
#include "cuda/kernels/block_reduce.cuh"
#include "cuda/kernels/elementwise.cuh"

namespace dtrain::cuda {
namespace {

constexpr int64_t kEnoughOutputs = 1024;   // outputs that fill the device without chunking rows
constexpr int64_t kMinChunkLength = 4096;  // reduced elements per chunk at least
constexpr int64_t kMaxChunks = 256;

struct ReduceGeometry {
  OffsetPlan<2> outputs;  // operands: out, the input at each output's row start
  OffsetPlan<1> reduced;  // the input's reduced dims, from any row start
  int64_t output_count = 0;
  int64_t reduced_count = 0;
  int64_t chunks = 1;
};

__device__ inline int64_t reduced_offset(const OffsetPlan<1>& plan, int64_t r) {
  if (plan.ndim == 1) return r * plan.strides[0][0];
  int64_t offset[1];
  plan.offsets(r, offset);
  return offset[0];
}

template <typename T, typename A, typename Op>
__device__ inline A accumulate(A total, const char* row, const OffsetPlan<1>& plan, int64_t r) {
  return Op::combine(total, static_cast<A>(Element<T>::load(*reinterpret_cast<const T*>(row + reduced_offset(plan, r)))));
}

template <typename Out, typename A>
__device__ inline void write_result(char* out, A value, bool mean, int64_t reduced_count) {
  if constexpr (std::is_floating_point_v<A>) {
    if (mean) value = value / static_cast<A>(reduced_count);  // 0 / 0 gives NaN for an empty mean, as on the CPU
  }
  *reinterpret_cast<Out*>(out) = Element<Out>::store(static_cast<compute_t<Out>>(value));
}

// Chunk c of the reduced range: [count * c / chunks, count * (c + 1) / chunks).
__device__ inline int64_t chunk_begin(int64_t count, int64_t chunks, int64_t chunk) { return count * chunk / chunks; }

// One block per (output, chunk). partials: [chunks][outputs], or null to write out directly.
template <typename T, typename Out, typename A, typename Op>
__global__ void reduce_rows(ReduceGeometry geometry, char* out, const char* input, A* partials, bool mean) {
  __shared__ A shared[32];
  const int64_t chunk = blockIdx.y;
  const int64_t begin = chunk_begin(geometry.reduced_count, geometry.chunks, chunk);
  const int64_t end = chunk_begin(geometry.reduced_count, geometry.chunks, chunk + 1);
  for (int64_t output = blockIdx.x; output < geometry.output_count; output += gridDim.x) {
    int64_t offsets[2];
    geometry.outputs.offsets(output, offsets);
    const char* row = input + offsets[1];
    A total = Op::template identity<A>();
    for (int64_t r = begin + threadIdx.x; r < end; r += blockDim.x) total = accumulate<T, A, Op>(total, row, geometry.reduced, r);
    total = block_all_reduce<Op>(total, shared);
    if (threadIdx.x == 0) {
      if (partials != nullptr) partials[chunk * geometry.output_count + output] = total;
      else write_result<Out>(out + offsets[0], total, mean, geometry.reduced_count);
    }
  }
}

// One thread per (output, chunk).
template <typename T, typename Out, typename A, typename Op>
__global__ void reduce_columns(ReduceGeometry geometry, char* out, const char* input, A* partials, bool mean) {
  const int64_t chunk = blockIdx.y;
  const int64_t begin = chunk_begin(geometry.reduced_count, geometry.chunks, chunk);
  const int64_t end = chunk_begin(geometry.reduced_count, geometry.chunks, chunk + 1);
  for (int64_t output = global_thread(); output < geometry.output_count; output += grid_stride()) {
    int64_t offsets[2];
    geometry.outputs.offsets(output, offsets);
    const char* row = input + offsets[1];
    A total = Op::template identity<A>();
    for (int64_t r = begin; r < end; ++r) total = accumulate<T, A, Op>(total, row, geometry.reduced, r);
    if (partials != nullptr) partials[chunk * geometry.output_count + output] = total;
    else write_result<Out>(out + offsets[0], total, mean, geometry.reduced_count);
  }
}

// Folds the chunks' partial results in chunk order.
template <typename Out, typename A, typename Op>
__global__ void fold_partials(ReduceGeometry geometry, char* out, const A* partials, bool mean) {
  for (int64_t output = global_thread(); output < geometry.output_count; output += grid_stride()) {
    A total = partials[output];
    for (int64_t chunk = 1; chunk < geometry.chunks; ++chunk) total = Op::combine(total, partials[chunk * geometry.output_count + output]);
    int64_t offsets[2];
    geometry.outputs.offsets(output, offsets);
    write_result<Out>(out + offsets[0], total, mean, geometry.reduced_count);
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

template <typename T, typename Out, typename A, typename Op>
void run_reduction(const LaunchContext& context, const Tensor& input, const std::vector<int64_t>& dims, Tensor& out,
                   bool mean, const char* name) {
  ReduceGeometry geometry;
  geometry.output_count = out.numel();
  if (geometry.output_count == 0) return;
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
  geometry.reduced = make_plan<1>(reduced_shape, {&reduced_view});
  geometry.reduced_count = reduced_shape.numel();
  Shape row_shape = input.shape();
  for (int64_t d : dims) row_shape[d] = 1;
  Tensor row_starts(std::make_shared<TensorImpl>(input.storage(), row_shape, input.strides(), input.storage_offset(),
                                                 input.dtype()));
  geometry.outputs = make_plan<2>(out.shape(), {&out, &row_starts});

  const bool walk_rows = geometry.reduced_count > 1 && smallest_stride(input, is_reduced, true) < smallest_stride(input, is_reduced, false);
  if (geometry.output_count < kEnoughOutputs && geometry.reduced_count >= 2 * kMinChunkLength) {
    geometry.chunks = std::min<int64_t>({kMaxChunks, geometry.reduced_count / kMinChunkLength,
                                         std::max<int64_t>(1, kEnoughOutputs / geometry.output_count)});
  }
  std::unique_ptr<ScratchBuffer> partials;
  A* partial_data = nullptr;
  if (geometry.chunks > 1) {
    partials = std::make_unique<ScratchBuffer>(out.device().index, sizeof(A) * geometry.chunks * geometry.output_count);
    partial_data = static_cast<A*>(partials->data());
  }
  char* out_data = static_cast<char*>(out.data());
  const char* in_data = static_cast<const char*>(input.data());
  if (walk_rows) {
    dim3 grid(static_cast<unsigned int>(std::min(geometry.output_count, kMaxBlocks)), static_cast<unsigned int>(geometry.chunks));
    reduce_rows<T, Out, A, Op><<<grid, kThreads, 0, context.stream>>>(geometry, out_data, in_data, partial_data, mean);
  } else {
    dim3 grid(blocks_for(geometry.output_count), static_cast<unsigned int>(geometry.chunks));
    reduce_columns<T, Out, A, Op><<<grid, kThreads, 0, context.stream>>>(geometry, out_data, in_data, partial_data, mean);
  }
  check_launch(name, input.dtype());
  if (geometry.chunks > 1) {
    fold_partials<Out, A, Op><<<blocks_for(geometry.output_count), kThreads, 0, context.stream>>>(geometry, out_data,
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
