#include "dist/model_averaging/gossip_averaging.h"

#include <cmath>
#include <cstddef>
#include <utility>
#include <vector>

#include "core/allocator.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/ops/elementwise.h"
#include "core/ops/factory.h"
#include "dist/bucket_assignment.h"
#include "dist/init.h"
#include "dist/wait_all.h"

namespace dtrain::dist {
namespace {

const GossipOptions& checked(const GossipOptions& options) {
  if (!(options.self_weight >= 0.0 && options.self_weight <= 1.0)) {
    fail("GossipAveraging: expected a self_weight in [0, 1] (the rest goes to the ring neighbours), got ",
         options.self_weight);
  }
  return options;
}

}  // namespace

GossipAveraging::GossipAveraging(std::vector<Tensor> parameters, std::shared_ptr<ProcessGroup> group,
                                 GossipOptions options)
    : group_(group ? std::move(group) : world_ptr()),
      options_(checked(options)),
      buckets_(std::move(parameters), megabytes_to_bytes(options.bucket_cap_mb, "GossipAveraging", "bucket_cap_mb"),
               "GossipAveraging") {
  const int n = group_->size();
  const int rank = group_->rank();
  if (n >= 2) neighbours_.push_back((rank + n - 1) % n);
  if (n >= 3) neighbours_.push_back((rank + 1) % n);
  if (!neighbours_.empty()) neighbour_weight_ = (1.0 - options_.self_weight) / static_cast<double>(neighbours_.size());
  MemoryTagScope communication(MemoryTag::Communication);
  for (const Tensor& buffer : buckets_.buffers()) {
    std::vector<Tensor> landing;
    for (size_t neighbour = 0; neighbour < neighbours_.size(); ++neighbour) landing.push_back(empty_like(buffer));
    received_.push_back(std::move(landing));
  }
}

void GossipAveraging::average() {
  // A ring of one has no neighbours: its parameters are the average already.
  if (neighbours_.empty()) return;
  buckets_.pack();
  issue_all_and_wait(buckets_.bucket_count(), [&](size_t bucket) {
    std::vector<PointToPoint> operations;
    for (size_t neighbour = 0; neighbour < neighbours_.size(); ++neighbour) {
      operations.push_back({PointToPoint::Send, buckets_.buffers()[bucket], neighbours_[neighbour]});
      operations.push_back({PointToPoint::Receive, received_[bucket][neighbour], neighbours_[neighbour]});
    }
    return group_->send_receive(std::move(operations));
  });
  NoGradGuard no_grad;
  for (size_t bucket = 0; bucket < buckets_.bucket_count(); ++bucket) {
    Tensor mixed = buckets_.buffers()[bucket];
    mixed.mul_(options_.self_weight);
    for (const Tensor& theirs : received_[bucket]) mixed.add_(theirs, neighbour_weight_);
  }
  buckets_.unpack();
}

double GossipAveraging::consensus_distance() {
  buckets_.pack();
  MemoryTagScope communication(MemoryTag::Communication);
  std::vector<Tensor> values;
  std::vector<Tensor> means;
  for (const Tensor& buffer : buckets_.buffers()) {
    values.push_back(buffer.to(kFloat64));
    means.push_back(values.back().clone());
  }
  issue_all_and_wait(means.size(), [&](size_t bucket) { return group_->all_reduce(means[bucket], ReduceOp::Average); });
  double mine = 0.0;
  for (size_t bucket = 0; bucket < values.size(); ++bucket) {
    Tensor deviation = values[bucket] - means[bucket];
    mine += (deviation * deviation).sum().item();
  }
  Tensor squared_distance = full({1}, mine, {.dtype = kFloat64});
  group_->all_reduce(squared_distance, ReduceOp::Average)->wait();
  return std::sqrt(squared_distance.item());
}

}  // namespace dtrain::dist
