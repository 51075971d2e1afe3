#pragma once
// ProcessGroup: collectives over a set of ranks. Every collective is asynchronous and returns a
// Work handle; tensors must be contiguous and stay alive (and unmodified) until wait() returns.
// The group dispatches each call to the communication backend of the tensors' device — MPI for
// CPU tensors; for CUDA tensors NCCL, or the staged path through MPI where NCCL cannot be used,
// chosen at the group's first CUDA collective (dist/cuda_communication.h) — so DDP and ZeRO are
// written once for both.
//
// CUDA tensors (NCCL). A collective runs on the backend's own stream, after the kernels queued so
// far on the issuing thread's stream (an event), and wait() makes the waiting thread's stream
// wait for it (an event) without blocking the host, as PyTorch's ProcessGroupNCCL: kernels queued
// after wait() see the result, and the host sees it through any copy to the host.
//
// Every rank of a group must issue the same collectives in the same order (as MPI requires);
// with one communication thread per process that order holds across groups too: collectives
// on overlapping groups must be issued in one order on every rank.
//
// Errors. Argument checks happen in the issuing call, on the calling thread; they depend only on
// the arguments, so a program that issues the same call on every rank (SPMD) gets the same
// error on every rank and no rank is left waiting. A rank whose arguments differ from the others'
// (a bug) is caught, on every rank, by the debug mode (DTRAIN_DEBUG_COLLECTIVES=1, see
// dist/collective_checker.h); without it, the watchdog (DTRAIN_COLLECTIVE_TIMEOUT) ends a job
// whose collective never completes. Errors of the collective itself (MPI) are raised by wait().
//
// Collectives write the outputs' bytes without bumping their storages' version counters (as
// PyTorch's c10d): ZeRO-3 gathers a parameter back into storage that autograd saved.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "dist/point_to_point.h"
#include "dist/work.h"

namespace dtrain::dist {

struct CollectiveCall;

// Sum of bool tensors is a logical or (as PyTorch); Average needs a floating dtype (an integer
// mean would silently floor) and is the sum divided by the group size, in the tensor's dtype
// (bfloat16/float16 compute in float and round once).
enum class ReduceOp : uint8_t { Sum, Average, Max };
const char* reduce_op_name(ReduceOp op);

// One device type's implementation of the collectives for one group of ranks. The group checks
// the arguments before calling these (contiguous, sizes, dtypes, root in range).
class CommunicationBackend {
 public:
  virtual ~CommunicationBackend() = default;
  virtual const char* name() const = 0;
  // In place on tensor.
  virtual WorkHandle all_reduce(Tensor& tensor, ReduceOp op) = 0;
  virtual WorkHandle broadcast(Tensor& tensor, int root) = 0;
  // output holds size() * input.numel() elements: rank r's input lands at [r * n, (r + 1) * n).
  // input may be output's slot of this rank (in place).
  virtual WorkHandle all_gather(const Tensor& input, Tensor& output) = 0;
  // input holds size() * output.numel() elements; rank r receives the reduction of every
  // rank's [r * n, (r + 1) * n). output may overlap input (for example be this rank's slot).
  virtual WorkHandle reduce_scatter(const Tensor& input, Tensor& output, ReduceOp op) = 0;
  virtual WorkHandle barrier() = 0;
  // Posts every send and receive at once; the Work completes when all have (dist/point_to_point.h).
  // The group has checked the operations. The default raises, naming the backend: it has none.
  virtual WorkHandle send_receive(const std::vector<PointToPoint>& operations);
  // The backend of a sub-group (MPI_Comm_split semantics): every rank of this group calls it;
  // ranks with the same color >= 0 form one sub-group, ordered by key, then by rank here. Returns
  // null for color < 0. The default returns null: the sub-group has no backend of this kind (a
  // collective on its CPU tensors raises; for CUDA tensors the sub-group chooses its own).
  virtual std::unique_ptr<CommunicationBackend> split(int color, int key) { return nullptr; }
};

class ProcessGroup {
 public:
  // ranks: the world ranks in this group, in group-rank order.
  ProcessGroup(std::vector<int> ranks, int rank_in_group);
  virtual ~ProcessGroup();

  int rank() const { return rank_; }
  int size() const { return static_cast<int>(ranks_.size()); }
  const std::vector<int>& ranks() const { return ranks_; }

  WorkHandle all_reduce(Tensor& tensor, ReduceOp op = ReduceOp::Sum);
  WorkHandle broadcast(Tensor& tensor, int root = 0);
  WorkHandle all_gather(const Tensor& input, Tensor& output);
  WorkHandle reduce_scatter(const Tensor& input, Tensor& output, ReduceOp op = ReduceOp::Sum);
  // Every rank of the group reaches it before any leaves. With a CUDA backend, that backend's
  // barrier runs first (raising if it was aborted), then the CPU backend's.
  WorkHandle barrier();

  // Point-to-point (dist/point_to_point.h): this rank's sends and receives, all posted together and
  // complete together (so a ring exchange cannot deadlock), peers given as ranks of this group.
  // Every rank of the group calls it at the same point, each with its own operations (possibly
  // none): that keeps the group's collectives in step and lets debug mode check, across ranks,
  // that every send has a receive of the same dtype and size — without it, a send nobody receives
  // leaves its Work waiting until the watchdog ends the job. The backend of the tensors' device
  // carries them: MPI for CPU tensors, the local backend in a world of one; the CUDA backends
  // (NCCL, staged) have no point-to-point, so CUDA tensors raise (copy them to the CPU).
  WorkHandle send_receive(std::vector<PointToPoint> operations);

  // A group of some of this group's ranks (given as group ranks, in the new group's order).
  // Every rank of this group must call it with the same list; ranks outside the list get nullptr.
  std::shared_ptr<ProcessGroup> new_subgroup(const std::vector<int>& group_ranks);
  // Sub-groups by color (as MPI_Comm_split): every rank of this group calls it; ranks with the
  // same color >= 0 form one group, ordered by key, then by rank in this group; color < 0 gets
  // nullptr. split(dist::node_index()) gives the ranks of this node.
  std::shared_ptr<ProcessGroup> split(int color, int key = 0);

  void set_backend(DeviceType type, std::unique_ptr<CommunicationBackend> backend);
  // Raises, naming the device, when the group has no backend for it. The CUDA backend is created
  // here, collectively, at the group's first CUDA collective (dist/cuda_communication.h).
  CommunicationBackend& backend_for(Device device);
  bool has_backend(DeviceType type) const;

  // "group of 2 ranks [0, 2]" — for messages.
  std::string str() const;

 private:
  // Counts the call; in debug mode checks it across ranks (raising on every rank when the ranks
  // disagree or one's arguments are wrong); otherwise raises argument_error, if any, here.
  // operations: send_receive's, for debug mode's check that they pair up across ranks.
  void check_call(CollectiveCall& call, const std::string& argument_error,
                  const std::vector<PointToPoint>* operations = nullptr);

  std::vector<int> ranks_;
  int rank_;
  std::unique_ptr<CommunicationBackend> backends_[kDeviceTypeCount];
  uint64_t sequence_number_ = 0;  // counts collectives, for the debug-mode cross-rank check
  friend class CollectiveChecker;
};

}  // namespace dtrain::dist
