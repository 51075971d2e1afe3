#pragma once
// StagedBackend: the collectives of a group on device tensors, staged through the host and run by
// the group's host backend (MPI): each input is copied to a host buffer, the host backend runs the
// collective there, and the result is copied back into the device tensor when the Work is waited
// for. It is what a group uses for CUDA tensors when NCCL cannot be: several ranks on one GPU
// (NCCL refuses a communicator with two ranks on one device), or no NCCL library, or
// DTRAIN_CUDA_COMMUNICATION=staged. Slow (two host copies per collective) but exact.
//
// Ordering needs no events: the copy to the host waits for the kernels queued before it on the
// issuing thread's stream (no collective reads a buffer a kernel still writes), and the copy back
// is queued on the waiting thread's stream, behind which the consumers' kernels run. The result
// is in the device tensor only once wait() has returned (every user of a Work waits).
//
// The copies go through the device's kernel table, so the same code runs on CPU tensors (it is
// tested on CPU under mpirun, where no GPU is needed).
#include <memory>

#include "dist/process_group.h"

namespace dtrain::dist {

class StagedBackend : public CommunicationBackend {
 public:
  // host: the group's CPU backend; it must outlive this one (the group owns both).
  explicit StagedBackend(CommunicationBackend& host) : host_(host) {}

  const char* name() const override { return "staged"; }
  WorkHandle all_reduce(Tensor& tensor, ReduceOp op) override;
  WorkHandle broadcast(Tensor& tensor, int root) override;
  WorkHandle all_gather(const Tensor& input, Tensor& output) override;
  WorkHandle reduce_scatter(const Tensor& input, Tensor& output, ReduceOp op) override;
  WorkHandle barrier() override;
  // A sub-group chooses its own CUDA backend at its first CUDA collective.
  std::unique_ptr<CommunicationBackend> split(int color, int key) override { return nullptr; }

 private:
  CommunicationBackend& host_;
};

}  // namespace dtrain::dist
