#pragma once
// Point-to-point operations (ProcessGroup::send_receive): one rank's sends to and receives from
// some ranks of its group, batched so that all of them are posted together and complete together.
// A ring exchange — every rank sends to its right and receives from its left — then cannot
// deadlock on the one communication thread, whichever rank starts first.
//
// A receive pairs with the sender's send as MPI pairs messages: the k-th send from rank a to rank b
// in a call pairs with the k-th receive that b posts from a in the same call; both must hold the
// same dtype and element count.
//
// This file holds the operations and the argument checks that need no communication; the checks
// across ranks (does every send have its receive?) run in debug mode (dist/collective_checker.h).
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace dtrain::dist {

struct PointToPoint {
  enum Kind : uint8_t { Send, Receive };
  Kind kind = Send;
  Tensor tensor;  // sent from, or received into (contiguous, alive until the Work completes)
  int peer = 0;   // the other rank, as a rank of the group
};

const char* point_to_point_kind_name(PointToPoint::Kind kind);

// What the pairing of one operation needs to know, on any rank.
struct PointToPointSummary {
  PointToPoint::Kind kind = PointToPoint::Send;
  int peer = 0;
  DType dtype = kFloat32;
  int64_t numel = 0;
};
std::vector<PointToPointSummary> summarize(const std::vector<PointToPoint>& operations);

// Why this rank's operations cannot be posted, as text (empty when they can): an undefined,
// non-contiguous or released tensor, a peer outside [0, group_size), tensors on several devices,
// a receive into bytes another operation of the call reads or writes, or sends to itself that do
// not pair with its receives from itself (checkable here without asking anyone).
std::string point_to_point_error(const std::vector<PointToPoint>& operations, int group_size, int rank);

// Whether the operations that rank `from` addresses to rank `to` pair up with those `to`
// addresses to `from` (the k-th send with the k-th receive, same dtype and element count); the
// first mismatch as text, empty when they pair.
std::string pairing_error(int from, int to, const std::vector<PointToPointSummary>& from_operations,
                          const std::vector<PointToPointSummary>& to_operations);

// "2 sends (to ranks 1, 3) of 96 bytes, 2 receives (from ranks 3, 1) of 96 bytes" — for messages.
std::string describe_point_to_point(const std::vector<PointToPoint>& operations);

}  // namespace dtrain::dist
