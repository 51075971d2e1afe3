#pragma once
// DistributedDataParallel: data-parallel training of one model on every rank of a process group,
// as PyTorch's torch.nn.parallel.DistributedDataParallel. Each rank runs forward and backward on
// its own share of the batch; backward averages the gradients across ranks on the way, so that
// every rank's optimizer takes the same step as one process with the whole batch would.
//
//   dist::init(&argc, &argv);
//   auto model = std::make_shared<GPT>(config);
//   dist::DistributedDataParallel ddp(model);             // same model on every rank, checked
//   optim::AdamW opt(model->parameters(), {.lr = 3e-4});
//   for (...) {
//     opt.zero_grad();
//     Tensor loss = cross_entropy(ddp(inputs), targets);  // forward through the wrapper
//     loss.backward();    // bucketed all-reduces overlap backward; .grad() is averaged on return
//     opt.step();
//   }
//
// Gradient accumulation: backwards of forwards run under `auto guard = ddp.no_sync();` only
// accumulate locally; the next synchronised backward averages the sum.
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "dist/comm_hooks.h"
#include "dist/model_consistency.h"
#include "dist/process_group.h"
#include "dist/reducer.h"
#include "layers/module.h"

namespace dtrain::dist {

struct DistributedDataParallelOptions {
  // Gradient bucket sizes, as PyTorch's bucket_cap_mb (MiB) and its first bucket: a small first
  // bucket starts communicating early in backward, larger ones after it cost fewer collectives.
  // 0 puts every parameter in a bucket of its own.
  double bucket_cap_mb = 25.0;
  double first_bucket_cap_mb = 1.0;
  // At most this many MiB of buckets being reduced at once (as DeepSpeed's reduce_bucket_size):
  // a bucket's launch waits for the oldest in flight first. 0: no cap (DDP's buckets are the
  // gradients themselves, so the cap bounds collectives in flight, not memory).
  double reduce_in_flight_cap_mb = 0.0;
  // Allow parameters that get no gradient in some steps (the output does not depend on them):
  // they contribute zeros. Without it such a step raises on every rank, naming them.
  bool find_unused_parameters = false;
  // Copy rank 0's buffers to every rank before each forward in training mode (as PyTorch's
  // broadcast_buffers; dtrain's own layers keep no buffers that change in training).
  bool broadcast_buffers = true;
  // The ranks that share the model; the world when null.
  std::shared_ptr<ProcessGroup> process_group = nullptr;
  // The run's settings that every rank must share (optimizer and its hyperparameters, batch,
  // ...: the examples pass their flags). Checked at construction with the model's own settings
  // (dist/model_consistency.h); a difference raises on every rank, naming it.
  RunSettings settings = {};
};

class DistributedDataParallel;

// While alive, forwards through the wrapper do not synchronise their backward: gradients
// accumulate in .grad() on each rank alone.
class [[nodiscard]] NoSyncGuard {
 public:
  explicit NoSyncGuard(DistributedDataParallel& ddp);
  ~NoSyncGuard();
  NoSyncGuard(const NoSyncGuard&) = delete;
  NoSyncGuard& operator=(const NoSyncGuard&) = delete;

 private:
  DistributedDataParallel& ddp_;
  bool previous_;
};

class DistributedDataParallel {
 public:
  // Checks that every rank has the same parameters and buffers (names, shapes, dtypes; an error
  // on every rank naming the first difference otherwise), then copies rank 0's values to every
  // rank. dist::init() must have run (a process started without mpirun is a world of one).
  explicit DistributedDataParallel(std::shared_ptr<Module> module, DistributedDataParallelOptions options = {});
  ~DistributedDataParallel();
  // Hooks on the parameters point at this object: it stays where it was built.
  DistributedDataParallel(const DistributedDataParallel&) = delete;
  DistributedDataParallel& operator=(const DistributedDataParallel&) = delete;

  // The module's forward, prepared so that the backward from its output averages gradients.
  Tensor operator()(const Tensor& input);

  Module& module() const { return *module_; }
  const std::shared_ptr<Module>& module_ptr() const { return module_; }
  std::vector<Tensor> parameters() const { return module_->parameters(); }
  ProcessGroup& process_group() const { return *group_; }

  NoSyncGuard no_sync() { return NoSyncGuard(*this); }
  bool synchronizes_gradients() const { return sync_enabled_; }

  // Completes a pending gradient synchronisation: backward does this by itself once the last
  // gradient arrives, so a training loop never needs it — except after a backward that did not
  // reach every parameter the output depends on (then gradients are averaged now). Idempotent.
  void finish_gradient_synchronization();

  // Replaces how a bucket is reduced (default: all-reduce and average); see comm_hooks.h:
  //   ddp.register_comm_hook(dist::bf16_compress_hook);
  // or a compression with error feedback (dist/compression/compression.h):
  //   ddp.register_comm_hook(dist::as_hook(dist::make_gradient_compression("powersgd:4")));
  void register_comm_hook(CommunicationHook hook);

  // The most gradient-bucket bytes being reduced at once so far (what reduce_in_flight_cap_mb bounds).
  size_t peak_bucket_bytes_in_flight() const { return reducer_->synchronizer().peak_bytes_in_flight(); }

  // Where the last synchronised iteration's DDP time went on this rank.
  const SynchronizationTimings& last_synchronization_timings() const { return reducer_->timings(); }

  // The gradient buckets, in launch order, as the parameter names each holds (for tests and
  // tuning bucket_cap_mb).
  std::vector<std::vector<std::string>> bucket_parameter_names() const;

 private:
  friend class NoSyncGuard;
  void broadcast_from_rank0(const std::vector<Tensor>& tensors);

  std::shared_ptr<Module> module_;
  DistributedDataParallelOptions options_;
  std::shared_ptr<ProcessGroup> group_;
  std::vector<Tensor> buffers_;
  std::unique_ptr<GradientReducer> reducer_;
  bool sync_enabled_ = true;
};

}  // namespace dtrain::dist
