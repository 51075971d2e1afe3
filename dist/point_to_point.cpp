#include "dist/point_to_point.h"

#include <cstddef>

#include "core/error.h"
#include "core/shape.h"
#include "core/storage.h"

namespace dtrain::dist {
namespace {

std::string operation_tensor_error(size_t index, const PointToPoint& operation) {
  const char* kind = point_to_point_kind_name(operation.kind);
  const Tensor& tensor = operation.tensor;
  if (!tensor.defined()) {
    return detail::concat("send_receive: expected a defined tensor in operation ", index, " (", kind,
                          "), got an undefined one");
  }
  if (!tensor.is_contiguous()) {
    return detail::concat("send_receive: expected a contiguous tensor in operation ", index, " (", kind,
                          "), got shape ", tensor.shape(), " with strides ", strides_str(tensor.strides()),
                          " (call .contiguous() first)");
  }
  if (!tensor.storage()->is_resident()) {
    return detail::concat("send_receive: the tensor of operation ", index, " (", kind, ", shape ", tensor.shape(),
                          ") has released storage; materialise it first");
  }
  return "";
}

bool overlaps(const Tensor& a, const Tensor& b) {
  if (a.nbytes() == 0 || b.nbytes() == 0) return false;
  auto* a_begin = static_cast<const char*>(a.data());
  auto* b_begin = static_cast<const char*>(b.data());
  return a_begin < b_begin + b.nbytes() && b_begin < a_begin + a.nbytes();
}

std::string elements(int64_t numel) { return detail::concat(numel, numel == 1 ? " element" : " elements"); }

// The operations of `operations` of one kind addressed to peer, in order.
std::vector<PointToPointSummary> addressed_to(const std::vector<PointToPointSummary>& operations,
                                              PointToPoint::Kind kind, int peer) {
  std::vector<PointToPointSummary> selected;
  for (const PointToPointSummary& operation : operations) {
    if (operation.kind == kind && operation.peer == peer) selected.push_back(operation);
  }
  return selected;
}

std::string peer_list(const std::vector<PointToPoint>& operations, PointToPoint::Kind kind) {
  std::string list;
  for (const PointToPoint& operation : operations) {
    if (operation.kind != kind) continue;
    list += detail::concat(list.empty() ? "" : ", ", operation.peer);
  }
  return list;
}

}  // namespace

const char* point_to_point_kind_name(PointToPoint::Kind kind) { return kind == PointToPoint::Send ? "send" : "receive"; }

std::vector<PointToPointSummary> summarize(const std::vector<PointToPoint>& operations) {
  std::vector<PointToPointSummary> summaries;
  summaries.reserve(operations.size());
  for (const PointToPoint& operation : operations) {
    PointToPointSummary summary{.kind = operation.kind, .peer = operation.peer};
    if (operation.tensor.defined()) {
      summary.dtype = operation.tensor.dtype();
      summary.numel = operation.tensor.numel();
    }
    summaries.push_back(summary);
  }
  return summaries;
}

std::string point_to_point_error(const std::vector<PointToPoint>& operations, int group_size, int rank) {
  for (size_t index = 0; index < operations.size(); ++index) {
    const PointToPoint& operation = operations[index];
    if (operation.kind != PointToPoint::Send && operation.kind != PointToPoint::Receive) {
      return detail::concat("send_receive: operation ", index, " is neither a send nor a receive (kind ",
                            static_cast<int>(operation.kind), ")");
    }
    if (operation.peer < 0 || operation.peer >= group_size) {
      return detail::concat("send_receive: expected a peer rank in [0, ", group_size, ") in operation ", index, " (",
                            point_to_point_kind_name(operation.kind), "), got ", operation.peer);
    }
    std::string error = operation_tensor_error(index, operation);
    if (!error.empty()) return error;
    const Device device = operations.front().tensor.device();
    if (operation.tensor.device() != device) {
      return detail::concat("send_receive: expected every tensor of one call on one device, got ", device,
                            " in operation 0 and ", operation.tensor.device(), " in operation ", index);
    }
  }
  // MPI leaves undefined what a receive into bytes that another operation of the call reads or
  // writes ends up holding. Two sends may share bytes (one tensor sent to both neighbours).
  for (size_t index = 0; index < operations.size(); ++index) {
    if (operations[index].kind != PointToPoint::Receive) continue;
    for (size_t other = 0; other < operations.size(); ++other) {
      if (other == index || !overlaps(operations[index].tensor, operations[other].tensor)) continue;
      return detail::concat("send_receive: the receive of operation ", index, " (from rank ", operations[index].peer,
                            ") writes bytes that operation ", other, " (",
                            point_to_point_kind_name(operations[other].kind),
                            ") also uses; give each receive a buffer of its own");
    }
  }
  std::vector<PointToPointSummary> mine = summarize(operations);
  return pairing_error(rank, rank, mine, mine);
}

std::string pairing_error(int from, int to, const std::vector<PointToPointSummary>& from_operations,
                          const std::vector<PointToPointSummary>& to_operations) {
  std::vector<PointToPointSummary> sends = addressed_to(from_operations, PointToPoint::Send, to);
  std::vector<PointToPointSummary> receives = addressed_to(to_operations, PointToPoint::Receive, from);
  for (size_t k = 0; k < sends.size() && k < receives.size(); ++k) {
    if (sends[k].dtype == receives[k].dtype && sends[k].numel == receives[k].numel) continue;
    return detail::concat("send_receive: send #", k, " from rank ", from, " to rank ", to, " carries ",
                          elements(sends[k].numel), " of ", sends[k].dtype, " but its receive on rank ", to,
                          " expects ", elements(receives[k].numel), " of ", receives[k].dtype);
  }
  if (sends.size() != receives.size()) {
    return detail::concat("send_receive: rank ", from, " sends ", sends.size(), sends.size() == 1 ? " tensor" : " tensors",
                          " to rank ", to, " but rank ", to, " receives ", receives.size(), " from rank ", from,
                          " in the same call (every send needs its receive)");
  }
  return "";
}

std::string describe_point_to_point(const std::vector<PointToPoint>& operations) {
  size_t sends = 0;
  size_t receives = 0;
  size_t sent_bytes = 0;
  size_t received_bytes = 0;
  for (const PointToPoint& operation : operations) {
    const size_t bytes = operation.tensor.defined() ? operation.tensor.nbytes() : 0;
    if (operation.kind == PointToPoint::Send) {
      ++sends;
      sent_bytes += bytes;
    } else {
      ++receives;
      received_bytes += bytes;
    }
  }
  return detail::concat(sends, sends == 1 ? " send" : " sends", " (to ranks ", peer_list(operations, PointToPoint::Send),
                        ") of ", sent_bytes, " bytes, ", receives, receives == 1 ? " receive" : " receives",
                        " (from ranks ", peer_list(operations, PointToPoint::Receive), ") of ", received_bytes,
                        " bytes");
}

}  // namespace dtrain::dist
