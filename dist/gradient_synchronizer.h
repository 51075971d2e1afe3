#pragma once
// GradientSynchronizer: the one gradient-synchronisation engine behind DistributedDataParallel
// (dist/reducer.h) and ZeroOptimizer at every stage (dist/zero/gradient_sharder.h). It knows
// buckets only as numbers in launch order, how many gradients each waits for and how many bytes
// each holds while it is being reduced; its owner says how a bucket is reduced (all-reduce for
// DDP and stage 0, reduce-scatter into this rank's shard for stages 1-3) and what to do once the
// reduction is done.
//
//   backward -> mark_ready(bucket) from the gradient hooks; launch_ready() starts the buckets
//               whose gradients are all in, strictly in launch order (every rank issues the same
//               collectives in the same order, whatever order its gradients arrived in)
//   finish() -> launches the rest, then waits for every bucket in order and completes it; every
//               collective is waited for even after one fails, and the first error is raised
//
// Bounded memory in flight (as DeepSpeed's reduce_bucket_size): with a cap, a bucket enters
// flight (acquire(), or its launch) only once the buckets already in flight leave room for its
// bytes — the oldest launched ones are waited for and completed first. A bucket larger than the
// cap goes alone. So, when gradients arrive in bucket order, the bytes in flight never exceed
// max(cap, largest bucket).
#include <cstddef>
#include <deque>
#include <functional>
#include <vector>

#include "dist/work.h"

namespace dtrain::dist {

struct BucketActions {
  // Starts reducing a bucket whose gradients are all in; the returned work must not be null.
  std::function<WorkHandle(size_t bucket)> start;
  // Runs after the bucket's work was waited for (moves the result where it belongs, frees a
  // transient buffer); may be empty.
  std::function<void(size_t bucket)> complete;
};

class GradientSynchronizer {
 public:
  // member_counts and bucket_bytes: by bucket, in launch order. max_bytes_in_flight 0: no cap.
  GradientSynchronizer(std::vector<size_t> member_counts, std::vector<size_t> bucket_bytes, BucketActions actions,
                       size_t max_bytes_in_flight);
  // Waits for collectives still in flight (they write into their owner's buffers).
  ~GradientSynchronizer();
  GradientSynchronizer(const GradientSynchronizer&) = delete;
  GradientSynchronizer& operator=(const GradientSynchronizer&) = delete;

  size_t bucket_count() const { return member_counts_.size(); }
  // A new iteration: every bucket waits for all of its members again. Nothing may be in flight.
  void begin();
  // One more member of bucket is ready (launching waits for launch_ready()).
  void mark_ready(size_t bucket);
  // Starts, in launch order, every bucket whose members are all ready and whose turn came.
  void launch_ready();
  // The bucket is about to hold bytes (a transient buffer): waits, if the cap requires, for the
  // oldest launched buckets to complete first. Launching a bucket acquires it when this was not
  // called. Idempotent within an iteration.
  void acquire(size_t bucket);
  // Completes, oldest first, the launched buckets whose collectives are done (without waiting).
  void complete_finished();
  // Launches every bucket not yet launched, in order, whatever their members.
  void launch_remaining();
  // Waits for every launched bucket and completes it, in launch order; the first error is raised
  // after all were waited for.
  void complete_all();
  // launch_remaining() then complete_all(); the first error of either is raised after both.
  void finish();
  // After a failed backward: waits for the buckets in flight without completing them and forgets
  // the iteration (the ranks may no longer agree on what comes next, so nothing new is issued).
  void abandon();

  bool is_launched(size_t bucket) const { return launched_.at(bucket) != 0; }
  size_t launched_count() const { return next_launch_; }
  bool all_launched() const { return next_launch_ == member_counts_.size(); }
  size_t bytes_in_flight() const { return bytes_in_flight_; }
  // The most bytes in flight at once since construction or the last reset.
  size_t peak_bytes_in_flight() const { return peak_bytes_in_flight_; }
  void reset_peak_bytes_in_flight() { peak_bytes_in_flight_ = bytes_in_flight_; }
  size_t max_bytes_in_flight() const { return max_bytes_in_flight_; }

 private:
  void launch(size_t bucket);
  void complete_oldest();  // waits for the oldest launched bucket and completes it

  std::vector<size_t> member_counts_;
  std::vector<size_t> bucket_bytes_;
  BucketActions actions_;
  size_t max_bytes_in_flight_;

  std::vector<size_t> pending_;   // by bucket: members not yet ready
  std::vector<char> acquired_;    // by bucket: its bytes count as in flight
  std::vector<char> launched_;    // by bucket
  std::vector<WorkHandle> works_;  // by bucket, while launched and not completed
  std::deque<size_t> launched_in_flight_;  // launched, not completed, oldest first
  size_t next_launch_ = 0;
  size_t bytes_in_flight_ = 0;
  size_t peak_bytes_in_flight_ = 0;
};

}  // namespace dtrain::dist
