#pragma once
// LocalBackend: the collectives of a group of one rank, where every collective is the identity
// (all_reduce, broadcast) or a copy (all_gather, reduce_scatter; send_receive's sends to itself
// into its receives from itself, paired in order) and completes before it returns.
// A world of one — a process started without mpirun, or a build without MPI — uses it for every
// device type, so it needs neither MPI nor NCCL.
#include <memory>
#include <vector>

#include "dist/process_group.h"

namespace dtrain::dist {

class LocalBackend : public CommunicationBackend {
 public:
  const char* name() const override { return "local"; }
  WorkHandle all_reduce(Tensor& tensor, ReduceOp op) override;
  WorkHandle broadcast(Tensor& tensor, int root) override;
  WorkHandle all_gather(const Tensor& input, Tensor& output) override;
  WorkHandle reduce_scatter(const Tensor& input, Tensor& output, ReduceOp op) override;
  WorkHandle barrier() override;
  WorkHandle send_receive(const std::vector<PointToPoint>& operations) override;
  std::unique_ptr<CommunicationBackend> split(int color, int key) override;
};

}  // namespace dtrain::dist
