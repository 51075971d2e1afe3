#pragma once
// How CudaBackend::reduce cuts a reduction into pieces that fill the GPU, and the order in which
// it combines them. The plan is a function of the shapes and the element size alone (never of the
// device or of timing), and so is every addition's order: a reduction gives the same bits on every
// run and on every GPU. Host-only planning (reduce_plan.cpp) plus the index arithmetic that the
// kernels (reduce_kernels.cu) and the host tests (tests/cuda/host/test_reduce_plan.cpp) share.
//
// Two walks, as on the CPU (core/cpu/reduce_kernels.cpp):
// - Rows: the reduced elements of one output are (mostly) contiguous. The reduced range is dealt in
//   groups of `vector` elements (one 16-byte load when aligned); a warp takes one (output, chunk)
//   piece, lane l summing groups l, l + 32, l + 64, ... of the chunk in order, the elements of a
//   group in order; the 32 lanes fold in a fixed shuffle tree (offsets 16, 8, 4, 2, 1).
// - Columns: neighbouring outputs are neighbouring elements (the bias gradient: sum over dim 0 of
//   [rows, cols]). A thread owns `vector` neighbouring outputs; a block is 32 such threads wide and
//   kColumnLanes high; lane y of a chunk sums rows begin + y, begin + y + kColumnLanes, ... in
//   order, and the lanes fold in order 0, 1, ..., kColumnLanes - 1.
// Either walk splits the reduced range into `chunks` when there are too few outputs to fill the
// device; a second kernel then folds each output's chunk partials in a fixed order (rows: a block
// per output, thread t summing partials t, t + 256, ... in order, each warp's tree, then the eight
// warp totals in order; columns: in chunk order).
#include <cstdint>

#include "core/host_device.h"

// Loop unrolling in device code; a host compiler (nvcc's host pass too) would warn about the pragma.
#if defined(__CUDA_ARCH__)
#define DTRAIN_REDUCE_UNROLL _Pragma("unroll")
#else
#define DTRAIN_REDUCE_UNROLL
#endif

namespace dtrain::cuda {

inline constexpr int kWarpSize = 32;
inline constexpr int kReduceThreads = 256;                    // every reduction kernel's block
inline constexpr int kRowWarpsPerBlock = kReduceThreads / kWarpSize;
inline constexpr int kColumnLanes = kReduceThreads / kWarpSize;  // rows walked side by side per block
// Blocks a reduction aims for: a few waves on a 132-SM GPU, a constant (the plan never asks the device).
inline constexpr int64_t kTargetBlocks = 512;
inline constexpr int64_t kMinColumnChunkRows = 64;         // rows per column chunk at least
inline constexpr int64_t kMinRowChunkGroupsPerLane = 8;    // vector groups per lane of a row chunk at least
inline constexpr int64_t kMaxChunks = 65535;               // gridDim.y of the column walk

enum class ReduceWalk : uint8_t { Rows, Columns };

struct ReducePlan {
  ReduceWalk walk = ReduceWalk::Columns;
  int64_t outputs = 0;
  int64_t reduced = 0;  // elements combined into each output
  int vector = 1;       // elements per group (rows) or outputs per thread (columns)
  int64_t groups = 0;   // rows: vector groups per output; columns: output groups (threads across)
  int64_t chunks = 1;   // pieces the reduced range is cut into
  // Launch of the main kernel (kReduceThreads threads per block): rows, blocks_x blocks of
  // kRowWarpsPerBlock pieces each; columns, blocks_x column tiles times blocks_y (= chunks).
  int64_t blocks_x = 0;
  int64_t blocks_y = 1;

  DTRAIN_HOST_DEVICE int64_t pieces() const { return outputs * chunks; }
  DTRAIN_HOST_DEVICE int64_t blocks() const { return blocks_x * blocks_y; }
};

// Elements per group: one 16-byte load, at most 8 (the accumulators are 8-byte doubles).
int vector_width(int64_t element_size);

// The plan for `outputs` outputs, each combining `reduced` elements of element_size bytes.
ReducePlan make_reduce_plan(ReduceWalk walk, int64_t outputs, int64_t reduced, int64_t element_size);

// Rows, chunks > 1: the plan of the second kernel, which folds each output's `chunks` partials
// (stored [outputs][chunks]) with a block of kReduceThreads lanes per output (row_lane_total with
// Lanes = kReduceThreads, vector 1, no chunks).
ReducePlan row_fold_plan(const ReducePlan& plan);

// Rows: chunk c of an output covers vector groups [begin, end) of its reduced range.
DTRAIN_HOST_DEVICE inline int64_t row_chunk_group_begin(const ReducePlan& plan, int64_t chunk) {
  return plan.groups * chunk / plan.chunks;
}
// Rows: elements [begin, end) of group g (the last group may be short).
DTRAIN_HOST_DEVICE inline int64_t group_element_begin(const ReducePlan& plan, int64_t group) { return group * plan.vector; }
DTRAIN_HOST_DEVICE inline int64_t group_element_end(const ReducePlan& plan, int64_t group) {
  const int64_t end = (group + 1) * plan.vector;
  return end < plan.reduced ? end : plan.reduced;
}
// Columns: chunk c covers reduced rows [begin, end).
DTRAIN_HOST_DEVICE inline int64_t column_chunk_row_begin(const ReducePlan& plan, int64_t chunk) {
  return plan.reduced * chunk / plan.chunks;
}
// Columns: outputs [begin, end) of output group g.
DTRAIN_HOST_DEVICE inline int64_t output_group_begin(const ReducePlan& plan, int64_t group) { return group * plan.vector; }
DTRAIN_HOST_DEVICE inline int64_t output_group_end(const ReducePlan& plan, int64_t group) {
  const int64_t end = (group + 1) * plan.vector;
  return end < plan.outputs ? end : plan.outputs;
}

// The combining order itself, shared by the kernels and the host tests. Op is a combine rule with
// `identity<A>()` and `combine(total, value)` (cuda/kernels/block_reduce.cuh, core/cpu/lane_accumulator.h).
// The loops load four steps ahead of combining (several loads in flight per thread), keeping the
// loaded values in their stored type S (a bf16 group is 4 registers, as doubles it would be 16)
// and converting each with to_accumulator(S) -> A as it is combined; the order of the combines is
// the plain order either way.

// Rows: lane `lane`'s total over chunk `chunk` of one output: its groups g = begin + lane,
// + Lanes, ... in order, each group's elements in order. load_group(g, values) stores group g's
// elements in values[0..) and returns how many there are. Lanes: 32 (a warp per piece), or
// kReduceThreads for the fold of the partials.
#if defined(__CUDACC__)
#pragma nv_exec_check_disable
#endif
template <int V, typename A, typename Op, int Lanes, typename S, typename LoadGroup, typename Convert>
DTRAIN_HOST_DEVICE A row_lane_total(const ReducePlan& plan, int64_t chunk, int lane, const LoadGroup& load_group,
                                    const Convert& to_accumulator) {
  A total = Op::template identity<A>();
  const int64_t end = row_chunk_group_begin(plan, chunk + 1);
  int64_t group = row_chunk_group_begin(plan, chunk) + lane;
  for (; group + 3 * Lanes < end; group += 4 * Lanes) {
    S values[4][V];
    int counts[4];
    DTRAIN_REDUCE_UNROLL
    for (int u = 0; u < 4; ++u) counts[u] = load_group(group + u * Lanes, values[u]);
    DTRAIN_REDUCE_UNROLL
    for (int u = 0; u < 4; ++u) {
      DTRAIN_REDUCE_UNROLL  // a constant bound keeps values in registers
      for (int v = 0; v < V; ++v) {
        if (v < counts[u]) total = Op::combine(total, to_accumulator(values[u][v]));
      }
    }
  }
  for (; group < end; group += Lanes) {
    S values[V];
    const int count = load_group(group, values);
    DTRAIN_REDUCE_UNROLL
    for (int v = 0; v < V; ++v) {
      if (v < count) total = Op::combine(total, to_accumulator(values[v]));
    }
  }
  return total;
}

// Rows: the 32 lane totals of a warp fold in a tree, lane l taking lane l + offset's total for
// offset 16, 8, 4, 2, 1 (halving from this one); lane 0 ends with the result (on the device:
// __shfl_down_sync).
inline constexpr int kWarpTreeFirstOffset = kWarpSize / 2;

// Columns: lane `lane`'s totals over chunk `chunk` for one output group: rows begin + lane,
// + kColumnLanes, ... in order. load_row(r, values) stores the group's V elements of row r (any
// value where the group has fewer outputs: those totals are never used).
#if defined(__CUDACC__)
#pragma nv_exec_check_disable
#endif
template <int V, typename A, typename Op, typename S, typename LoadRow, typename Convert>
DTRAIN_HOST_DEVICE void column_lane_totals(const ReducePlan& plan, int64_t chunk, int lane, const LoadRow& load_row,
                                           const Convert& to_accumulator, A (&totals)[V]) {
  DTRAIN_REDUCE_UNROLL
  for (int v = 0; v < V; ++v) totals[v] = Op::template identity<A>();
  const int64_t end = column_chunk_row_begin(plan, chunk + 1);
  int64_t row = column_chunk_row_begin(plan, chunk) + lane;
  for (; row + 3 * kColumnLanes < end; row += 4 * kColumnLanes) {
    S values[4][V];
    DTRAIN_REDUCE_UNROLL
    for (int u = 0; u < 4; ++u) load_row(row + u * kColumnLanes, values[u]);
    DTRAIN_REDUCE_UNROLL
    for (int u = 0; u < 4; ++u) {
      DTRAIN_REDUCE_UNROLL
      for (int v = 0; v < V; ++v) totals[v] = Op::combine(totals[v], to_accumulator(values[u][v]));
    }
  }
  for (; row < end; row += kColumnLanes) {
    S values[V];
    load_row(row, values);
    DTRAIN_REDUCE_UNROLL
    for (int v = 0; v < V; ++v) totals[v] = Op::combine(totals[v], to_accumulator(values[v]));
  }
}
// Columns: a block's lane totals fold in lane order 0, 1, ..., kColumnLanes - 1; then (chunks > 1)
// each output's chunk partials fold in chunk order 0, 1, ..., chunks - 1.

}  // namespace dtrain::cuda
