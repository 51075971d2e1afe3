#pragma once
// GradientReducer: the part of DistributedDataParallel that runs inside backward (PyTorch's
// Reducer). It owns the gradient buckets, marks a parameter ready when its post-accumulate-grad
// hook fires, starts a bucket's all-reduce as soon as all of its gradients are in (in bucket
// order, the same on every rank) while backward goes on, and once the last expected gradient
// has arrived waits for every bucket, so that .grad() holds the average over ranks when
// backward returns and the optimizer's step can follow at once. Launching in order, the cap on
// bytes in flight and the waiting are the shared engine's (dist/gradient_synchronizer.h).
//
// One iteration, from the reducer's side:
//   forward  -> prepare_for_backward(output): walks the autograd graph from the output to find
//               the parameters backward will reach (the rest are unused in this iteration)
//   backward -> a hook per parameter; full buckets launch; the last hook calls finish()
//   finish() -> launches what is left (a parameter with no gradient contributes zeros), waits,
//               and checks across ranks that no rank missed a gradient it should have had
// Every rank issues the same collectives in the same order whatever happened locally, so an
// error (an unused parameter without find_unused_parameters) is raised on every rank instead of
// leaving some waiting.
#include <cstddef>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "dist/comm_hooks.h"
#include "dist/gradient_bucket.h"
#include "dist/gradient_synchronizer.h"
#include "dist/process_group.h"
#include "dist/work.h"
#include "layers/module.h"

namespace dtrain::dist {

// Where one synchronised iteration's DDP work went on this rank, in milliseconds of wall time
// (for tuning bucket sizes, and for the scaling benchmark's profile).
struct SynchronizationTimings {
  double graph_walk_ms = 0;      // after forward: finding the parameters backward will reach
  double gradient_copy_ms = 0;   // copying gradients that arrived as tensors of their own into buckets
  double launch_ms = 0;          // starting the buckets' reductions (compression included)
  double wait_ms = 0;            // at the end of backward: waiting for the reductions not yet done,
                                 // averaging, and the cross-rank gradient check
};

struct GradientReducerOptions {
  size_t first_bucket_cap_bytes = size_t{1} << 20;
  size_t bucket_cap_bytes = size_t{25} << 20;
  // Parameters the output does not depend on get zeros from this rank instead of an error.
  bool find_unused_parameters = false;
  // At most this many bucket bytes being reduced at once (0: no cap): launching a bucket waits
  // for the oldest in flight first.
  size_t max_bytes_in_flight = 0;
  // Prefixes error messages.
  std::string owner = "DistributedDataParallel";
};

class GradientReducer {
 public:
  // parameters: the trainable parameters by name, in registration order, identical on every rank
  // (check that first). Registers a post-accumulate-grad hook on each; the destructor removes them.
  GradientReducer(std::shared_ptr<ProcessGroup> group, std::vector<NamedTensor> parameters,
                  GradientReducerOptions options);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Replaces the default all-reduce-and-average; takes effect from the next bucket launched.
  void set_communication_hook(CommunicationHook hook);

  // Before a forward: settles the previous iteration. A forward that was never followed by a
  // backward is forgotten; a backward that stopped short of some gradients is finished now (so
  // every rank's collectives still match) and reported, since the optimizer may have used
  // gradients that were not yet averaged.
  void before_forward();
  // After a forward whose backward must synchronise gradients (not under no_sync, grad mode on,
  // output requires grad).
  void prepare_for_backward(const Tensor& output);
  // Launches every bucket not yet launched, waits for all of them and checks across ranks which
  // parameters got gradients. Runs by itself when the last expected gradient arrives; calling it
  // again, or when no synchronised backward is pending, does nothing.
  void finish();

  // Whether a prepared backward has not finished yet.
  bool expecting_gradients() const { return phase_ == Phase::Expecting; }

  const std::vector<GradientBucket>& buckets() const { return buckets_; }
  const GradientSynchronizer& synchronizer() const { return *synchronizer_; }
  // Of the last prepared iteration (complete once it finished).
  const SynchronizationTimings& timings() const { return timings_; }
  const std::vector<std::string>& parameter_names() const { return names_; }

 private:
  enum class Phase {
    Idle,       // no synchronised backward pending: gradients accumulate locally (no_sync)
    Expecting,  // prepared by a forward; hooks mark parameters ready
    Finished,   // this iteration's gradients are averaged; a late gradient is an error
  };

  void on_gradient_ready(size_t parameter);
  WorkHandle launch(size_t bucket);
  [[noreturn]] void fail_missing_gradients(const std::vector<std::vector<int>>& ranks_without_gradient) const;

  std::shared_ptr<ProcessGroup> group_;
  std::vector<std::string> names_;
  std::vector<Tensor> parameters_;
  std::unordered_map<const TensorImpl*, size_t> index_of_;
  GradientReducerOptions options_;
  CommunicationHook communication_hook_ = allreduce_hook;
  std::vector<GradientBucket> buckets_;
  struct Location {
    size_t bucket;
    size_t member;
  };
  std::vector<Location> location_of_;  // by parameter
  std::vector<size_t> hook_handles_;   // by parameter
  std::unique_ptr<GradientSynchronizer> synchronizer_;

  // The current iteration.
  Phase phase_ = Phase::Idle;
  std::vector<char> expected_;          // by parameter: reachable from the forward's output
  std::vector<char> arrived_;           // by parameter: its hook fired in this backward
  std::vector<char> counted_ready_;     // by parameter: counted off its bucket's pending_
  std::vector<char> has_local_gradient_;  // by parameter: contributed a gradient (set at launch)
  size_t expected_arrivals_ = 0;       // parameters reachable from the output
  size_t expected_arrivals_seen_ = 0;  // of those, how many got their gradient so far
  size_t arrivals_ = 0;                // every gradient that arrived, foreseen or not
  SynchronizationTimings timings_;
};

}  // namespace dtrain::dist
