#pragma once
// Debug mode for collectives (DTRAIN_DEBUG_COLLECTIVES=1, or set_collective_checks(true) on every
// rank at the same point). Before each collective, the ranks of the group exchange a small
// fixed-size description of the call they are about to make — kind, dtype, device, element count,
// reduce op, root, sequence number, and whether this rank's arguments passed their checks — and
// compare. When they differ, or a rank's arguments were wrong, every rank raises the same
// dtrain::Error naming both calls, instead of some ranks waiting forever in a collective that
// the others never start. The collective itself is then skipped on every rank, so the group stays
// usable.
//
// The exchange is a blocking all_gather through the group's CPU backend (as PyTorch's
// TORCH_DISTRIBUTED_DEBUG=DETAIL does with gloo): the issuing call waits for the group's earlier
// collectives, so communication no longer overlaps compute. It is a mode for finding a bug.
#include <cstdint>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "dist/point_to_point.h"
#include "dist/process_group.h"

namespace dtrain::dist {

// Read from DTRAIN_DEBUG_COLLECTIVES by dist::init; every rank must agree.
void set_collective_checks(bool enabled);
bool collective_checks_enabled();

enum class CollectiveKind : uint8_t { AllReduce, Broadcast, AllGather, ReduceScatter, Barrier, Split, SendReceive };
const char* collective_kind_name(CollectiveKind kind);

// What one rank asks its group to do: the fields every rank must agree on.
struct CollectiveCall {
  CollectiveKind kind = CollectiveKind::Barrier;
  DType dtype = kFloat32;  // of the tensors (all_reduce .. reduce_scatter)
  DeviceType device = DeviceType::CPU;
  ReduceOp op = ReduceOp::Sum;  // all_reduce, reduce_scatter
  int64_t numel = 0;            // elements of the (input) tensor; -1 when it is undefined;
                                // send_receive: this rank's operation count
  int64_t root = -1;            // broadcast
  uint64_t sequence = 0;        // the group's count of collectives issued before this one
  std::string argument_error;   // why this rank's arguments were refused; empty when they passed

  // "all_reduce(float32, 10 elements, sum, #5)"
  std::string str() const;
  // Equal in everything but argument_error; send_receive calls differ between ranks in all but
  // their kind and sequence number (each rank has its own peers and tensors).
  bool same_call(const CollectiveCall& other) const;
};

class CollectiveChecker {
 public:
  // Exchanges mine across the ranks of group and raises, on every rank alike, when a rank's call
  // differs from group rank 0's or a rank's arguments were refused. Blocks until the exchange is
  // done.
  static void check(ProcessGroup& group, const CollectiveCall& mine);
  // check(), then a second exchange of every rank's operations (kind, peer, dtype, element count;
  // the longest list sets the size): raises, on every rank alike, when a send and its receive
  // disagree or a send has no receive (dist/point_to_point.h's pairing).
  static void check_point_to_point(ProcessGroup& group, const CollectiveCall& mine,
                                   const std::vector<PointToPoint>& operations);
};

}  // namespace dtrain::dist
