#pragma once
// What a ZeroOptimizer is built from: its options, and a factory for the optimizer that updates
// this rank's shard (any dtrain optimizer: SGD, Adam, AdamW).
//
// The factory receives, for each parameter group, this rank's pieces of that group's parameters
// (1-D views of the fp32 master shard; a rank may hold none of a group) and returns the optimizer
// over them. One group:
//   dist::ZeroOptimizer zero(model, dist::zero_optimizer<optim::AdamW>(optim::AdamWOptions{.lr = 3e-4}),
//                            {.stage = 2});
// Several (no weight decay for biases and LayerNorm parameters):
//   ZeroOptions options{.stage = 3, .param_group_of = [](const std::string& name, const Tensor& p) {
//     return p.dim() < 2 ? 1 : 0; }};
//   auto factory = [](std::vector<std::vector<Tensor>> groups) {
//     return std::make_unique<optim::AdamW>(std::vector<optim::ParamGroupOptions<optim::AdamWOptions>>{
//         {.params = groups[0], .options = {.lr = 3e-4, .weight_decay = 0.1}},
//         {.params = groups[1], .options = {.lr = 3e-4, .weight_decay = 0.0}}});
//   };
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "dist/model_consistency.h"
#include "dist/process_group.h"
#include "optim/loss_scaler.h"
#include "optim/optimizer.h"

namespace dtrain::dist {

struct ZeroOptions {
  // 0: replicated optimizer and all-reduced gradients (the data-parallel baseline); 1: optimizer
  // state sharded; 2: and gradients; 3: and parameters.
  int stage = 1;
  // The dtype forward and backward run in. Unset: the model's own (fp32 or fp64, no master copy).
  // kBFloat16 or kFloat16 with an fp32 model: mixed precision, with fp32 master weights in the
  // shard; kFloat16 scales the loss dynamically (loss_scaling).
  std::optional<DType> compute_dtype = std::nullopt;
  // Stages 0-2: parameters are cut into buckets of about this many MiB (of the compute dtype),
  // each sharded, reduced and gathered as one flat buffer. 0: a bucket per parameter.
  double bucket_cap_mb = 25;
  // At most this many MiB of gradient buckets being reduced at once (as DeepSpeed's
  // reduce_bucket_size): at stages 2-3 a bucket's buffer is allocated only once the buckets in
  // flight leave room (the oldest are waited for), so the communication peak is this cap (or the
  // largest bucket, if larger) instead of every bucket at once. 0: no cap.
  double reduce_in_flight_cap_mb = 50;
  // Stage 3: parameters gathered ahead of the module that needs them next (MiB).
  double prefetch_mb = 50;
  // Stage 3: parameters with fewer elements than this stay whole on every rank (gathered after
  // each step, never freed), as DeepSpeed's stage3_param_persistence_threshold.
  int64_t param_persistence_threshold = 0;
  optim::LossScalerOptions loss_scaling = {};  // kFloat16 only
  // The ranks that share the model; the world when null.
  std::shared_ptr<ProcessGroup> process_group = nullptr;
  // Which parameter group a parameter belongs to (0, 1, ...); all in group 0 when unset. The
  // group count is the largest index plus one, the same on every rank.
  std::function<size_t(const std::string& name, const Tensor& parameter)> param_group_of = nullptr;
  // ZeRO-Offload for CUDA models: this rank's master shard, its gradient, the optimizer state and
  // the optimizer's update live on the host (the gradient shard is copied there before the step,
  // the updated shard back before the all-gather). GPU memory then holds only the compute
  // parameters and gradients. A CPU model is on the host already: nothing changes.
  bool offload_optimizer = false;
  // The run's settings that every rank must share (optimizer hyperparameters, batch, ...: the
  // examples pass their flags). Checked at construction with the model's own settings, the
  // stage and the compute dtype (dist/model_consistency.h); a difference raises on every rank.
  RunSettings settings = {};
};

// Builds the shard's optimizer from the pieces of each parameter group.
using OptimizerFactory =
    std::function<std::unique_ptr<optim::Optimizer>(std::vector<std::vector<Tensor>> group_parameters)>;

// A factory for one group of a typed optimizer: zero_optimizer<optim::AdamW>({.lr = 1e-3}).
template <typename OptimizerType, typename Options>
OptimizerFactory zero_optimizer(Options options) {
  return [options](std::vector<std::vector<Tensor>> groups) -> std::unique_ptr<optim::Optimizer> {
    std::vector<Tensor> all;
    for (auto& group : groups) all.insert(all.end(), group.begin(), group.end());
    return std::make_unique<OptimizerType>(std::move(all), options);
  };
}

}  // namespace dtrain::dist
