#pragma once
// Communication hooks: how DistributedDataParallel reduces one gradient bucket across ranks, as
// PyTorch's DDP comm hooks (torch.distributed.algorithms.ddp_comm_hooks.default_hooks).
//
//   ddp.register_comm_hook(dist::bf16_compress_hook);   // all-reduce in bf16, half the bytes
//
// Hooks that keep state between steps (error feedback, PowerSGD's Q matrices) are objects, see
// dist/compression/gradient_compression.h; register one with as_hook(compression).
#include <cstddef>
#include <functional>
#include <vector>

#include "core/tensor.h"
#include "dist/process_group.h"
#include "dist/work.h"

namespace dtrain::dist {

// What a hook gets for one bucket (PyTorch's GradBucket).
struct HookBucket {
  // The bucket's launch position: the same on every rank and every step, so a hook can key
  // per-bucket state on it.
  size_t index = 0;
  // This rank's flat gradients of the bucket: write the averaged result here.
  Tensor buffer;
  // Views into buffer, one per parameter, shaped like it, in buffer order.
  std::vector<Tensor> gradients;
  // The last bucket launched in this backward: a hook counting steps counts on it.
  bool is_last = false;
};

// Starts reducing bucket.buffer across group and returns a Work; once that Work's wait() has
// returned, the buffer must hold the average of every rank's buffer. The buffer must not be
// written by anyone else until then. Called during backward, on the thread running it, in the
// same bucket order on every rank; the Works are waited for in that order too.
using CommunicationHook = std::function<WorkHandle(ProcessGroup& group, HookBucket& bucket)>;

// The default: an all-reduce (sum) in the buffer's own dtype, then a division by the group size.
WorkHandle allreduce_hook(ProcessGroup& group, HookBucket& bucket);
// Compress to fp16 (bf16), divided by the group size before the cast as PyTorch does so the sum
// cannot overflow fp16, all-reduce the half-size copy, and write it back into the buffer.
// Gradients then carry fp16 (bf16) precision: about 3 (2) significant decimal digits.
WorkHandle fp16_compress_hook(ProcessGroup& group, HookBucket& bucket);
WorkHandle bf16_compress_hook(ProcessGroup& group, HookBucket& bucket);

// A Work that waits for work and then runs finish once, on the thread that waits: what a hook
// does after its collective (divide, decompress, or issue its next collective). finish runs on
// the first wait() only. The Work counts as completed only once finish has run: a finish may
// issue collectives (PowerSGD's second all-reduce), and those must happen when the owner waits
// — in launch order on every rank — never because some rank polled earlier than another.
WorkHandle then_on_wait(WorkHandle work, std::function<void()> finish);

}  // namespace dtrain::dist
