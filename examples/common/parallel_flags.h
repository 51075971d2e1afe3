#pragma once
// The examples' data-parallel flags and how they become train::TrainerOptions: DDP with a plain
// optimizer (--zero-stage 0, fp32), or ZeRO (--zero-stage 1|2|3, or any stage with --precision
// bf16|fp16: fp32 master weights in the shard), on the CPU or this rank's GPU (--device), and for
// slow networks DDP with another communication (--comm powersgd:4, int8, local-sgd:8, gossip, ...;
// README, "Slow networks"). Without mpirun both are a world of one.
#include <cstdint>
#include <string>

#include "core/device.h"
#include "dist/model_consistency.h"
#include "tools/command_line/flags.h"
#include "train/trainer.h"

namespace dtrain::examples {

struct ParallelChoice {
  int64_t zero_stage = 0;          // 0: DDP (or ZeRO's replicated stage 0 with bf16/fp16), 1-3: ZeRO
  std::string precision = "auto";  // fp32 | bf16 | fp16: the dtype forward and backward run in;
                                   // auto: bf16 on a GPU, fp32 on the CPU
  std::string device = "auto";     // auto | cpu | cuda (dist/device_choice.h)
  int64_t grad_accum = 1;          // micro-batches per optimizer step
  // DDP (--zero-stage 0, fp32) only: what the ranks exchange (train/trainer_communication.h).
  std::string communication = "ddp";
  int64_t communication_start_step = 0;
};

void add_parallel_flags(FlagParser& flags, ParallelChoice& choice);
// Checks the values, then (dist::init() must have run) picks this rank's device, replacing
// device auto by cpu or cuda and precision auto by bf16 (GPU) or fp32 (CPU). --device cuda
// without a usable GPU is a usage error (exit 2) with the reason. Returns the device.
Device resolve_parallel_flags(ParallelChoice& choice);

// The trainer's data parallelism, precision, device and accumulation for a resolved choice.
train::TrainerOptions trainer_options(const ParallelChoice& choice, Device device);

}  // namespace dtrain::examples
