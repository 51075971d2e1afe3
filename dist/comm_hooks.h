#pragma once
// Communication hooks: how DistributedDataParallel reduces one gradient bucket across ranks, as
// PyTorch's DDP comm hooks (torch.distributed.algorithms.ddp_comm_hooks.default_hooks).
//
//   ddp.register_comm_hook(dist::bf16_compress_hook);   // all-reduce in bf16, half the bytes
#include <functional>

#include "core/tensor.h"
#include "dist/process_group.h"
#include "dist/work.h"

namespace dtrain::dist {

// Starts reducing bucket_buffer (this rank's flat gradients of one bucket) across group and
// returns a Work; once that Work's wait() has returned, bucket_buffer must hold the average of
// every rank's buffer. The buffer must not be written until then. Called during backward, on the
// thread running it, in the same bucket order on every rank.
using CommunicationHook = std::function<WorkHandle(ProcessGroup& group, Tensor& bucket_buffer)>;

// The default: an all-reduce (sum) in the buffer's own dtype, then a division by the group size.
WorkHandle allreduce_hook(ProcessGroup& group, Tensor& bucket_buffer);
// Compress to fp16 (bf16), divided by the group size before the cast as PyTorch does so the sum
// cannot overflow fp16, all-reduce the half-size copy, and write it back into the buffer.
// Gradients then carry fp16 (bf16) precision: about 3 (2) significant decimal digits.
WorkHandle fp16_compress_hook(ProcessGroup& group, Tensor& bucket_buffer);
WorkHandle bf16_compress_hook(ProcessGroup& group, Tensor& bucket_buffer);

// A Work that waits for work and then runs finish once, on the thread that waits: what a hook
// does after its collective (divide, decompress). finish runs on the first wait() only.
WorkHandle then_on_wait(WorkHandle work, std::function<void()> finish);

}  // namespace dtrain::dist
