#pragma once
// cuBLASLt GEMMs through plans made once per LtPlanKey: the matmul descriptor, the matrix layouts
// and the heuristic's algorithm (or the knowledge that there is none). Building these costs
// several microseconds of host time per call, which the GPT-2 step paid on every Linear. Per thread
// and device (the descriptor's pointer attributes are set per call), so no locking.
#include <cublasLt.h>

#include <cstddef>
#include <memory>
#include <unordered_map>

#include "cuda/lt_plan_key.h"

namespace dtrain::cuda {

inline constexpr size_t kLtWorkspaceBytes = size_t{32} << 20;  // what cuBLASLt's Hopper kernels like to have

// The pointers of one call of a planned GEMM (bias and aux where the epilogue has them).
struct LtOperands {
  const void* a = nullptr;
  const void* b = nullptr;
  void* d = nullptr;
  const void* bias = nullptr;  // the bias (BIAS epilogues) or the bias gradient written (BGRAD ones)
  void* aux = nullptr;         // GELU_AUX's pre-activation
};

class LtPlanCache {
 public:
  // The cache of this thread.
  static LtPlanCache& for_this_thread();
  ~LtPlanCache();

  // Runs D = op(A) op(B) with the key's epilogue on stream; false, having queued nothing, when
  // cuBLASLt has no algorithm for the key (remembered: the heuristic is asked once per key).
  bool run(const LtPlanKey& key, const LtOperands& operands, cudaStream_t stream);

  size_t size() const { return plans_.size(); }

 private:
  struct Plan;
  std::unordered_map<LtPlanKey, std::unique_ptr<Plan>, LtPlanKeyHash> plans_;
};

}  // namespace dtrain::cuda
