#pragma once
// MpiBackend: the collectives of one group on CPU tensors, through MPI. Each call queues one task
// on the process's communication thread and returns at once; the task runs the blocking MPI
// collective (MPI_Allreduce, ...) on the group's own communicator, then completes the Work.
//
// Blocking calls on that thread rather than MPI_Iallreduce & co.: Open MPI's nonblocking
// collectives (libnbc) use other, slower algorithms than its blocking ones (tuned), and make
// progress only inside MPI calls; bench/collectives.cpp measures both (bench/README.md).
//
// Dtypes: float32, float64, int32, int64 and bool map to MPI types (sum and max of bool are a
// logical or). bfloat16 and float16 have no MPI type: they travel as 16-bit words, so the wire
// carries half the bytes of float32 (the point of compressing gradients), and are reduced by
// user-defined MPI ops that add or compare in float and round each partial result back.
#include <mpi.h>

#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "dist/communication_thread.h"
#include "dist/process_group.h"

namespace dtrain::dist {

// The MPI type a tensor of dtype travels as (16-bit floats: MPI_UINT16_T, reduced by dtrain's ops).
MPI_Datatype mpi_datatype(DType dtype);

class MpiBackend : public CommunicationBackend {
 public:
  // Owns comm (freed on the communication thread when the backend goes); size and rank are the
  // communicator's.
  MpiBackend(MPI_Comm comm, int size, int rank, std::shared_ptr<CommunicationThread> thread);
  ~MpiBackend() override;
  MpiBackend(const MpiBackend&) = delete;
  MpiBackend& operator=(const MpiBackend&) = delete;

  const char* name() const override { return "mpi"; }
  WorkHandle all_reduce(Tensor& tensor, ReduceOp op) override;
  WorkHandle broadcast(Tensor& tensor, int root) override;
  WorkHandle all_gather(const Tensor& input, Tensor& output) override;
  WorkHandle reduce_scatter(const Tensor& input, Tensor& output, ReduceOp op) override;
  WorkHandle barrier() override;
  // One communication-thread task posts every send, matches every receive, then waits for all
  // (dist/mpi_point_to_point.h). A message of another size than its receive raises from wait().
  WorkHandle send_receive(const std::vector<PointToPoint>& operations) override;
  std::unique_ptr<CommunicationBackend> split(int color, int key) override;

  // MPI_Reduce in place: root's tensor receives the reduction of every rank's (Average divides
  // by size()); the other ranks' tensors are left as they were. For the hierarchical all-reduce
  // (dist/hierarchical_all_reduce.h), which reduces inside a host first.
  WorkHandle reduce(Tensor& tensor, ReduceOp op, int root);
  // tensor /= divisor (a floating dtype; 16-bit floats divide in float and round once), queued
  // behind the collectives issued before it: the one division of an Average made of several steps.
  WorkHandle divide(Tensor& tensor, int divisor);

  int size() const { return size_; }
  int rank() const { return rank_; }

 private:
  // "MPI all_reduce(float32, 10 elements, sum) over 4 ranks", for the watchdog.
  std::string describe(const char* collective, const Tensor& tensor, const char* suffix) const;

  MPI_Comm comm_;
  int size_;
  int rank_;
  std::shared_ptr<CommunicationThread> thread_;
};

}  // namespace dtrain::dist
