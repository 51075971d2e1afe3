#pragma once
// What a ZeroOptimizer costs in memory on this rank, for the examples' one-line report and for
// checking the ZeRO paper's claims against the allocator's counters (core/allocator.h) rather
// than assuming them.
//
// With Ψ trainable parameters, compute-dtype size c, master-dtype size m (m = c without mixed
// precision, and then no master copy is kept) and k optimizer-state tensors per element (Adam:
// 2), the paper's per-rank model state is
//   stage 0 (DP)   parameters cΨ    gradients cΨ    optimizer state (m' + km)Ψ
//   stage 1        cΨ               cΨ              (m' + km)Ψ/N
//   stage 2        cΨ               cΨ/N            (m' + km)Ψ/N
//   stage 3        cΨ/N             cΨ/N            (m' + km)Ψ/N
// where m' = m in mixed precision (the fp32 master weights are optimizer state) and 0 otherwise:
// fp32 Adam gives 16Ψ, 8Ψ + 8Ψ/N, 4Ψ + 12Ψ/N, 16Ψ/N, and bf16/fp16 Adam 16Ψ, 4Ψ + 12Ψ/N,
// 2Ψ + 14Ψ/N, 16Ψ/N. "Ψ/N" is, exactly, the number of parameter elements in this rank's shards
// (they add up to Ψ over the ranks); the flat buffers' padding comes on top and is reported apart.
#include <cstdint>
#include <string>

#include "core/allocator.h"
#include "core/dtype.h"

namespace dtrain::dist {

struct ZeroModelStateBytes {
  int64_t parameters = 0;
  int64_t gradients = 0;
  int64_t optimizer_state = 0;
  int64_t total() const { return parameters + gradients + optimizer_state; }
};

// The formulas above. shard_parameter_count: the elements of Ψ held in this rank's shards.
ZeroModelStateBytes zero_model_state_bytes(int stage, int64_t parameter_count, int64_t shard_parameter_count,
                                           DType compute_dtype, DType master_dtype, int64_t states_per_element);

struct ZeroMemoryReport {
  int rank = 0;
  int world_size = 1;
  int stage = 0;
  DType compute_dtype = kFloat32;
  DType master_dtype = kFloat32;
  int64_t parameter_count = 0;        // Ψ
  int64_t shard_parameter_count = 0;  // of Ψ, the elements in this rank's shards
  int64_t states_per_element = 0;     // k: optimizer-state tensors per parameter element (once stepped)

  // The process's allocator counters (every tensor of this process), current and peak.
  MemoryCounter parameters;
  MemoryCounter gradients;
  MemoryCounter optimizer_state;
  MemoryCounter communication;

  // Held by this optimizer now (bytes), by tag, counted from its own buffers ...
  ZeroModelStateBytes held;
  int64_t held_communication = 0;
  // ... and of those, the padding of the flat buffers (elements that belong to no parameter).
  ZeroModelStateBytes padding;
  int64_t padding_communication = 0;

  // The formula for this configuration (without padding).
  ZeroModelStateBytes expected() const;

  // "zero-2 rank 1/4 bf16: params 1.2 MiB (peak 1.3 MiB), grads ..., optimizer ..., comm ...,
  //  padding 24 B; model state 3.4 MiB = 2Ψ + 14Ψ/N + padding"
  std::string str() const;
};

}  // namespace dtrain::dist
