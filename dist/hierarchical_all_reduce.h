#pragma once
// HierarchicalAllReduce: the CPU backend of a group whose ranks span several hosts. Its all_reduce
// goes in three steps, so that only one rank per host sends over the network between hosts:
//   1. reduce inside each host, to the host's first rank (its leader)    MPI_Reduce
//   2. all-reduce among the leaders, one per host                        MPI_Allreduce
//   3. broadcast inside each host, from the leader                       MPI_Bcast
// A flat all-reduce of n ranks on h hosts has every rank's share of the ring cross the slow link;
// here the link between hosts carries one all-reduce of h ranks, and the rest stays on the host
// (shared memory or loopback, where it is far faster).
//
// The steps are queued together on the one communication thread, which runs tasks in order, so the
// collective's Work completes after the broadcast and the caller sees one asynchronous collective,
// as with the flat backend. Average sums in steps 1 and 2 and divides once, on the leader, by the
// group's size before step 3 — the same division the flat path makes. Hosts may hold different
// numbers of ranks; a host of one rank skips steps 1 and 3.
//
// Only all_reduce is hierarchical: broadcast, all_gather, reduce_scatter, barrier, send_receive and split go to
// the flat backend unchanged (split gives the sub-group a flat backend). dist::init installs it on
// the world group (DTRAIN_HIERARCHICAL_ALLREDUCE, dist/init.h); CUDA tensors keep NCCL, which
// handles the topology itself.
//
// When it helps. Between 2 hosts each host must send at least the tensor once (2(h-1)/h of it for h
// hosts), which the leaders' all-reduce does. A flat all-reduce sends that much too when its
// algorithm happens to pair the ranks of a host first (Open MPI's recursive halving over ranks
// placed host by host), and more when it does not (ranks dealt round robin over the hosts, a ring,
// counts that are not powers of two). Measured (bench/hierarchical_all_reduce.cpp, 16 MiB, 2
// simulated hosts x 2 ranks at 200mbit, median of 5): ranks dealt round robin (--map-by node),
// flat 2.36 s, hierarchical 1.37 s (1.72x); ranks placed host by host (mpirun's default), flat
// 1.59 s, hierarchical 1.72 s (0.93x: the same bytes between hosts, plus the steps inside the host).
//
// Results: sums are reduced in a different order than the flat algorithm's, so floating results
// may differ from it in the last bits (integers and exactly representable sums do not).
#include <memory>
#include <vector>

#include "dist/process_group.h"

namespace dtrain::dist {

class MpiBackend;

class HierarchicalAllReduce : public CommunicationBackend {
 public:
  // Collective over flat's ranks: every rank calls it with the index of its host (the same number
  // on the ranks of one host, for example dist::node_index()). The ranks of a host keep their
  // order in flat; the first is the leader.
  HierarchicalAllReduce(std::unique_ptr<MpiBackend> flat, int host);
  ~HierarchicalAllReduce() override;
  HierarchicalAllReduce(const HierarchicalAllReduce&) = delete;
  HierarchicalAllReduce& operator=(const HierarchicalAllReduce&) = delete;

  const char* name() const override { return "mpi hierarchical"; }
  WorkHandle all_reduce(Tensor& tensor, ReduceOp op) override;
  WorkHandle broadcast(Tensor& tensor, int root) override;
  WorkHandle all_gather(const Tensor& input, Tensor& output) override;
  WorkHandle reduce_scatter(const Tensor& input, Tensor& output, ReduceOp op) override;
  WorkHandle barrier() override;
  WorkHandle send_receive(const std::vector<PointToPoint>& operations) override;
  std::unique_ptr<CommunicationBackend> split(int color, int key) override;

  int ranks_on_this_host() const;
  bool is_leader() const { return leaders_ != nullptr; }

 private:
  std::unique_ptr<MpiBackend> flat_;
  std::unique_ptr<MpiBackend> host_;     // the ranks of this host; rank 0 is the leader
  std::unique_ptr<MpiBackend> leaders_;  // one rank per host; null on the ranks that do not lead
};

}  // namespace dtrain::dist
