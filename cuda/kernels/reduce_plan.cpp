#include "cuda/kernels/reduce_plan.h"

#include <algorithm>

#include "core/error.h"

namespace dtrain::cuda {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

constexpr int64_t kMaxGridX = (int64_t{1} << 31) - 1;
constexpr int64_t kMaxRowBlocks = int64_t{1} << 20;  // the row kernel loops over what is left

}  // namespace

int vector_width(int64_t element_size) {
  if (element_size <= 0 || element_size > 16) fail("reduce plan: expected an element size of 1 to 16 bytes, got ", element_size);
  return static_cast<int>(std::min<int64_t>(8, 16 / element_size));
}

ReducePlan make_reduce_plan(ReduceWalk walk, int64_t outputs, int64_t reduced, int64_t element_size) {
  if (outputs < 0 || reduced < 0) fail("reduce plan: expected non-negative counts, got ", outputs, " outputs of ", reduced);
  ReducePlan plan;
  plan.walk = walk;
  plan.outputs = outputs;
  plan.reduced = reduced;
  plan.vector = vector_width(element_size);
  if (outputs == 0) return plan;
  if (walk == ReduceWalk::Rows) {
    plan.groups = ceil_div(reduced, plan.vector);
    const int64_t target_pieces = kTargetBlocks * kRowWarpsPerBlock;
    if (outputs < target_pieces) {
      // Each chunk keeps at least kMinRowChunkGroupsPerLane groups per lane: shorter ones cost
      // more in partials than they gain in parallelism.
      const int64_t most = std::max<int64_t>(1, plan.groups / (kWarpSize * kMinRowChunkGroupsPerLane));
      plan.chunks = std::clamp<int64_t>(ceil_div(target_pieces, outputs), 1, most);
    }
    plan.blocks_x = std::min(ceil_div(plan.pieces(), kRowWarpsPerBlock), kMaxRowBlocks);
    plan.blocks_y = 1;
  } else {
    plan.groups = ceil_div(outputs, plan.vector);
    plan.blocks_x = ceil_div(plan.groups, kWarpSize);
    if (plan.blocks_x > kMaxGridX) fail("reduce plan: ", outputs, " outputs need more than 2^31 blocks");
    if (plan.blocks_x < kTargetBlocks) {
      const int64_t most = std::clamp<int64_t>(reduced / kMinColumnChunkRows, 1, kMaxChunks);
      plan.chunks = std::clamp<int64_t>(ceil_div(kTargetBlocks, plan.blocks_x), 1, most);
    }
    plan.blocks_y = plan.chunks;
  }
  return plan;
}

ReducePlan row_fold_plan(const ReducePlan& plan) {
  ReducePlan fold;
  fold.walk = ReduceWalk::Rows;
  fold.outputs = plan.outputs;
  fold.reduced = plan.chunks;
  fold.vector = 1;
  fold.groups = plan.chunks;
  fold.chunks = 1;
  fold.blocks_x = std::min(plan.outputs, kMaxRowBlocks);  // a block per output
  return fold;
}

}  // namespace dtrain::cuda
