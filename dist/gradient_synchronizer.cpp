#include "dist/gradient_synchronizer.h"

#include <algorithm>
#include <exception>
#include <utility>

#include "core/error.h"
#include "dist/wait_all.h"

namespace dtrain::dist {

GradientSynchronizer::GradientSynchronizer(std::vector<size_t> member_counts, std::vector<size_t> bucket_bytes,
                                           BucketActions actions, size_t max_bytes_in_flight)
    : member_counts_(std::move(member_counts)),
      bucket_bytes_(std::move(bucket_bytes)),
      actions_(std::move(actions)),
      max_bytes_in_flight_(max_bytes_in_flight) {
  if (bucket_bytes_.size() != member_counts_.size()) {
    fail("GradientSynchronizer: expected one size per bucket (", member_counts_.size(), " buckets), got ",
         bucket_bytes_.size());
  }
  if (!actions_.start) fail("GradientSynchronizer: expected a function that starts a bucket's reduction, got none");
  works_.resize(member_counts_.size());
  begin();
}

GradientSynchronizer::~GradientSynchronizer() {
  for (size_t bucket : launched_in_flight_) {
    try {
      if (works_[bucket]) works_[bucket]->wait();
    } catch (const std::exception&) {
      // The error was the iteration's to report; a destructor cannot.
    }
  }
}

void GradientSynchronizer::begin() {
  if (!launched_in_flight_.empty()) {
    fail("GradientSynchronizer: a new iteration began while ", launched_in_flight_.size(),
         " bucket(s) of the last one were still being reduced");
  }
  pending_ = member_counts_;
  acquired_.assign(member_counts_.size(), 0);
  launched_.assign(member_counts_.size(), 0);
  next_launch_ = 0;
  bytes_in_flight_ = 0;
}

void GradientSynchronizer::mark_ready(size_t bucket) {
  if (pending_.at(bucket) == 0) fail("GradientSynchronizer: bucket ", bucket, " got more ready members than it has");
  --pending_[bucket];
}

void GradientSynchronizer::launch_ready() {
  while (next_launch_ < member_counts_.size() && pending_[next_launch_] == 0) launch(next_launch_);
}

void GradientSynchronizer::acquire(size_t bucket) {
  if (acquired_.at(bucket)) return;
  const size_t bytes = bucket_bytes_[bucket];
  // Room is made from launched buckets only: one still filling cannot be completed yet.
  while (max_bytes_in_flight_ > 0 && bytes_in_flight_ + bytes > max_bytes_in_flight_ && !launched_in_flight_.empty()) {
    complete_oldest();
  }
  acquired_[bucket] = 1;
  bytes_in_flight_ += bytes;
  peak_bytes_in_flight_ = std::max(peak_bytes_in_flight_, bytes_in_flight_);
}

void GradientSynchronizer::launch(size_t bucket) {
  ++next_launch_;  // its turn is taken even if starting fails: it is never issued twice
  launched_[bucket] = 1;
  acquire(bucket);
  try {
    works_[bucket] = actions_.start(bucket);
  } catch (...) {
    acquired_[bucket] = 0;
    bytes_in_flight_ -= bucket_bytes_[bucket];
    throw;
  }
  if (!works_[bucket]) fail("GradientSynchronizer: starting bucket ", bucket, "'s reduction returned no work");
  launched_in_flight_.push_back(bucket);
}

void GradientSynchronizer::complete_oldest() {
  const size_t bucket = launched_in_flight_.front();
  launched_in_flight_.pop_front();
  WorkHandle work = std::move(works_[bucket]);
  works_[bucket] = nullptr;
  // The bytes leave flight whatever happens: the owner frees its buffers after an error too.
  struct Release {
    GradientSynchronizer& self;
    size_t bucket;
    ~Release() {
      self.acquired_[bucket] = 0;
      self.bytes_in_flight_ -= self.bucket_bytes_[bucket];
    }
  } release{*this, bucket};
  work->wait();
  if (actions_.complete) actions_.complete(bucket);
}

void GradientSynchronizer::complete_finished() {
  while (!launched_in_flight_.empty() && works_[launched_in_flight_.front()]->is_completed()) complete_oldest();
}

void GradientSynchronizer::launch_remaining() {
  while (next_launch_ < member_counts_.size()) launch(next_launch_);
}

void GradientSynchronizer::complete_all() {
  FirstError first_error;
  while (!launched_in_flight_.empty()) first_error.run([this] { complete_oldest(); });
  first_error.rethrow();
}

void GradientSynchronizer::finish() {
  FirstError first_error;
  first_error.run([this] { launch_remaining(); });
  first_error.run([this] { complete_all(); });
  first_error.rethrow();
}

void GradientSynchronizer::abandon() {
  for (size_t bucket : launched_in_flight_) {
    try {
      works_[bucket]->wait();
    } catch (const std::exception&) {
      // The backward's own error is the one to report.
    }
    works_[bucket] = nullptr;
  }
  launched_in_flight_.clear();
  begin();
}

}  // namespace dtrain::dist
