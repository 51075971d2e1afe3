#include "examples/common/parallel_flags.h"

#include "core/cuda_device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "dist/device_choice.h"
#include "tools/command_line/program_exit.h"
#include "train/trainer_communication.h"

namespace dtrain::examples {

void add_parallel_flags(FlagParser& flags, ParallelChoice& choice) {
  flags.add_choice("device", choice.device, dist::kDeviceChoices,
                   "auto: cuda:(local rank mod visible GPUs) when a GPU is visible, else the CPU; cpu; cuda");
  flags.add("zero-stage", choice.zero_stage,
            "0: DDP; 1, 2, 3: ZeRO sharding of optimizer state, + gradients, + parameters");
  flags.add_choice("precision", choice.precision, {"fp32", "bf16", "fp16", "auto"},
                   "compute dtype; bf16 and fp16 keep fp32 master weights (fp16 scales the loss); "
                   "auto: bf16 on a GPU, fp32 on the CPU (and with --comm other than ddp)");
  flags.add("grad-accum", choice.grad_accum,
            "micro-batches of --batch per optimizer step (DDP all-reduces only the last one's backward)");
  flags.add("comm", choice.communication,
            "with DDP: ddp (exact all-reduce), bf16, fp16, powersgd:<rank>, int8, 1bit, topk:<fraction>, "
            "local-sgd:<period>, gossip (README, \"Slow networks\")");
  flags.add("comm-start-step", choice.communication_start_step,
            "steps of exact all-reduce (DDP) before --comm's compression or local steps begin");
}

Device resolve_parallel_flags(ParallelChoice& choice) {
  if (choice.zero_stage < 0 || choice.zero_stage > 3) {
    usage_error("--zero-stage must be 0, 1, 2 or 3, got ", choice.zero_stage);
  }
  if (choice.grad_accum < 1) usage_error("--grad-accum must be >= 1, got ", choice.grad_accum);
  try {
    train::check_communication_spec(choice.communication);
  } catch (const Error& error) {
    usage_error("--comm: ", error.what());
  }
  const bool exact = choice.communication == train::kExactCommunication;
  if (!exact && choice.zero_stage != 0) {
    usage_error("--comm ", choice.communication, " replaces DDP's all-reduce: it needs --zero-stage 0, got ",
                choice.zero_stage);
  }
  if (!exact && (choice.precision == "bf16" || choice.precision == "fp16")) {
    usage_error("--comm ", choice.communication, " runs on fp32 DDP: --precision ", choice.precision,
                " trains as ZeRO stage 0, which has no communication hooks");
  }
  if (choice.communication_start_step < 0) {
    usage_error("--comm-start-step must be >= 0, got ", choice.communication_start_step);
  }
  if (choice.device == "cuda" && !cuda::is_available()) {
    usage_error("--device cuda: no usable GPU (", cuda::unavailable_reason(), ")");
  }
  Device device = dist::choose_training_device(choice.device);
  choice.device = device.is_cuda() ? "cuda" : "cpu";
  if (choice.precision == "auto") choice.precision = device.is_cuda() && exact ? "bf16" : "fp32";
  return device;
}

train::TrainerOptions trainer_options(const ParallelChoice& choice, Device device) {
  train::TrainerOptions options;
  // Stage 0 in fp32 is DDP; in bf16/fp16 the trainer runs it as ZeRO's replicated stage 0.
  options.data_parallel = choice.zero_stage == 0 ? train::DataParallel::DDP : train::DataParallel::Zero;
  options.zero_stage = static_cast<int>(choice.zero_stage);
  options.precision = choice.precision == "bf16" ? kBFloat16 : choice.precision == "fp16" ? kFloat16 : kFloat32;
  options.device = device;
  options.grad_accum = choice.grad_accum;
  options.communication = choice.communication;
  options.communication_start_step = choice.communication_start_step;
  return options;
}

}  // namespace dtrain::examples
