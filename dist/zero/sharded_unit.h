#pragma once
// ShardedUnit: parameters that ZeRO shards, reduces and gathers as one flat buffer — a bucket of
// parameters at stages 0-2, the parameters of one module at stage 3. Its buffers, by stage
// (S = the layout's shard size, P = its padded total, "own slot" = this rank's [r*S, (r+1)*S)):
//
//                     stage 0-1              stage 2                stage 3
//   full              P, resident            P, resident            P, gathered for use only
//   compute_shard     own slot of full       own slot of full       S, its own storage
//   master_shard      compute_shard, or S of its own: in the master dtype in mixed precision, on the
//                     host when offloaded (ZeroOptions::offload_optimizer on a CUDA model)
//   full_gradient     P (params' .grad())    -                      -
//   gradient_shard    own slot of it         S                      S
//   bucket            -                      P while reduce-scattered (communication)
// Stages 0-1 reduce full_gradient itself in place (all-reduce, or reduce-scatter into its own
// slot); stages 2-3 reduce-scatter the transient bucket straight into gradient_shard.
//
// The parameters' tensors are views of `full` (their TensorImpls are re-pointed), so gathering
// into `full` updates them in place and a stage-3 release frees their bytes while autograd's
// saved views keep the storage handle (core/storage.h). Stage 0 uses one shard (N = 1).
//
// While an all-gather into `full` is in flight, none of `full` may be read or written — not even
// this rank's own slot, which an in-place all-gather may use as scratch space (Open MPI's Bruck
// algorithm rotates blocks through the buffer): wait_gather() first.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/tensor.h"
#include "dist/process_group.h"
#include "dist/work.h"
#include "dist/zero/shard_layout.h"
#include "dist/zero/sharding_strategy.h"

namespace dtrain::dist {

struct ShardedUnit {
  std::string name;                // for messages: "bucket 2" or "module 'blocks.0.ln1'"
  std::vector<size_t> parameters;  // indices into the optimizer's parameter list, in buffer order
  ShardLayout layout;
  int shard = 0;  // the shard this rank owns
  DType compute_dtype = kFloat32;
  DType master_dtype = kFloat32;
  bool persistent = false;  // stage 3: stays gathered
  bool offloaded = false;   // the master shard and its optimizer live on the host

  Tensor full;
  Tensor compute_shard;
  Tensor master_shard;
  Tensor full_gradient;
  Tensor gradient_shard;
  Tensor bucket;

  WorkHandle gather_work;  // an all-gather into full not yet waited for
  std::vector<char> arrived;     // by member: its gradient arrived in this backward
  size_t arrived_count = 0;
  // The gradient shard holds an average reduced by an earlier backward of this step, which the
  // next backward accumulates onto (cleared by zero_grad).
  bool holds_reduced_gradient = false;

  int64_t own_begin() const { return layout.shard_begin(shard); }
  int64_t shard_size() const { return layout.shard_size(); }
  int64_t padded_total() const { return layout.padded_total(); }
  bool mixed_precision() const { return compute_dtype != master_dtype; }
  // Whether master_shard is a tensor of its own, refreshed into compute_shard after each step.
  bool has_own_master() const { return mixed_precision() || offloaded; }

  // The slot of member (a position in `parameters`) in a flat buffer of this unit, shaped like it.
  Tensor member_view(const Tensor& flat, size_t member, const Shape& shape) const;

  bool is_gathered() const { return full.storage()->is_resident(); }
  // Stage 3: allocates full again and starts the all-gather of every rank's compute shard into it.
  void start_gather(ProcessGroup& group);
  // Waits for an all-gather in flight (raising its error).
  void wait_gather();
  // Stage 3: frees full's bytes (waits for an all-gather in flight first).
  void release();

  // Bytes of padding this unit holds in each tag's buffers (for the memory report).
  int64_t padding_bytes(MemoryTag tag, const ShardingStrategy& strategy) const;
};

// Points parameter's handle at view's storage, offset, strides and dtype (as Module::to does),
// dropping its gradient: every holder of the parameter sees the flat buffer from then on.
void point_parameter_at(const Tensor& parameter, const Tensor& view);

}  // namespace dtrain::dist
