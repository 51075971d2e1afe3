#include "dist/collective_checker.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "core/allocator.h"
#include "core/error.h"
#include "core/ops/factory.h"

namespace dtrain::dist {
namespace {

std::atomic<bool> checks_enabled{false};

// A call travels as fixed-size int64 words, so one all_gather of a known size carries every
// rank's: 8 fields, then the argument error's first bytes.
constexpr int64_t kFieldWords = 8;
constexpr int64_t kErrorBytes = 256;
constexpr int64_t kCallWords = kFieldWords + kErrorBytes / 8;
// send_receive's second exchange: one operation as 4 int64 words (kind, peer, dtype, element
// count); a rank with fewer operations than the longest list pads with words nobody reads.
constexpr int64_t kOperationWords = 4;

void encode(const CollectiveCall& call, int64_t* words) {
  words[0] = static_cast<int64_t>(call.kind);
  words[1] = static_cast<int64_t>(call.dtype);
  words[2] = static_cast<int64_t>(call.device);
  words[3] = static_cast<int64_t>(call.op);
  words[4] = call.numel;
  words[5] = call.root;
  words[6] = static_cast<int64_t>(call.sequence);
  size_t error_bytes = std::min<size_t>(call.argument_error.size(), kErrorBytes);
  words[7] = static_cast<int64_t>(error_bytes);
  char* text = reinterpret_cast<char*>(words + kFieldWords);
  std::memset(text, 0, kErrorBytes);
  std::memcpy(text, call.argument_error.data(), error_bytes);
}

CollectiveCall decode(const int64_t* words) {
  CollectiveCall call;
  call.kind = static_cast<CollectiveKind>(words[0]);
  call.dtype = static_cast<DType>(words[1]);
  call.device = static_cast<DeviceType>(words[2]);
  call.op = static_cast<ReduceOp>(words[3]);
  call.numel = words[4];
  call.root = words[5];
  call.sequence = static_cast<uint64_t>(words[6]);
  size_t error_bytes = static_cast<size_t>(std::clamp<int64_t>(words[7], 0, kErrorBytes));
  call.argument_error.assign(reinterpret_cast<const char*>(words + kFieldWords), error_bytes);
  return call;
}

std::string elements(int64_t numel) {
  if (numel < 0) return "an undefined tensor";
  return detail::concat(numel, numel == 1 ? " element" : " elements");
}

}  // namespace

void set_collective_checks(bool enabled) { checks_enabled.store(enabled); }
bool collective_checks_enabled() { return checks_enabled.load(); }

const char* collective_kind_name(CollectiveKind kind) {
  switch (kind) {
    case CollectiveKind::AllReduce: return "all_reduce";
    case CollectiveKind::Broadcast: return "broadcast";
    case CollectiveKind::AllGather: return "all_gather";
    case CollectiveKind::ReduceScatter: return "reduce_scatter";
    case CollectiveKind::Barrier: return "barrier";
    case CollectiveKind::Split: return "split";
    case CollectiveKind::SendReceive: return "send_receive";
  }
  return "unknown collective";
}

std::string CollectiveCall::str() const {
  std::string device_prefix = device == DeviceType::CPU ? "" : Device{device, 0}.str() + " ";
  std::string tensor = detail::concat(device_prefix, dtype_name(dtype), ", ", elements(numel));
  std::string sequence_text = detail::concat("#", sequence);
  const char* name = collective_kind_name(kind);
  switch (kind) {
    case CollectiveKind::AllReduce:
    case CollectiveKind::ReduceScatter:
      return detail::concat(name, "(", tensor, ", ", reduce_op_name(op), ", ", sequence_text, ")");
    case CollectiveKind::Broadcast:
      return detail::concat(name, "(", tensor, ", root ", root, ", ", sequence_text, ")");
    case CollectiveKind::AllGather:
      return detail::concat(name, "(", tensor, " per rank, ", sequence_text, ")");
    case CollectiveKind::Split:
    case CollectiveKind::Barrier:
      return detail::concat(name, "(", sequence_text, ")");
    case CollectiveKind::SendReceive:
      return detail::concat(name, "(", numel, numel == 1 ? " operation, " : " operations, ", sequence_text, ")");
  }
  return detail::concat(name, "(", sequence_text, ")");
}

bool CollectiveCall::same_call(const CollectiveCall& other) const {
  if (kind == CollectiveKind::SendReceive && other.kind == CollectiveKind::SendReceive) return sequence == other.sequence;
  return kind == other.kind && dtype == other.dtype && device == other.device && op == other.op &&
         numel == other.numel && root == other.root && sequence == other.sequence;
}

namespace {

// Every rank's call, by group rank (a blocking all_gather).
std::vector<CollectiveCall> gather_calls(ProcessGroup& group, const CollectiveCall& mine) {
  std::vector<CollectiveCall> calls;
  MemoryTagScope communication(MemoryTag::Communication);
  Tensor sent = empty({kCallWords}, {.dtype = kInt64});
  encode(mine, sent.data_ptr<int64_t>());
  Tensor received = empty({kCallWords * group.size()}, {.dtype = kInt64});
  // Straight to the backend: the exchange is not itself a checked, counted collective.
  group.backend_for(Device::cpu()).all_gather(sent, received)->wait();
  const int64_t* words = received.data_ptr<int64_t>();
  for (int member = 0; member < group.size(); ++member) calls.push_back(decode(words + member * kCallWords));
  return calls;
}

// Raises, on every rank alike, when a rank's arguments were refused or its call differs from
// group rank 0's.
void compare_calls(ProcessGroup& group, const CollectiveCall& mine, const std::vector<CollectiveCall>& calls) {
  // Every rank looks at the same gathered calls in the same order, so every rank raises the
  // same message (each prefixed with its own rank by the error context).
  for (int member = 0; member < group.size(); ++member) {
    const CollectiveCall& call = calls[member];
    if (call.argument_error.empty()) continue;
    // This rank's own error in full; another rank's as far as it travelled.
    const std::string& reason = member == group.rank() ? mine.argument_error : call.argument_error;
    fail("rank ", group.ranks()[member], " could not issue ", call.str(), ": ", reason,
         " (DTRAIN_DEBUG_COLLECTIVES: every rank of the ", group.str(), " raises this)");
  }
  const CollectiveCall& reference = calls[0];
  for (int member = 1; member < group.size(); ++member) {
    if (calls[member].same_call(reference)) continue;
    fail("collectives differ across ranks: rank ", group.ranks()[0], " called ", reference.str(), " but rank ",
         group.ranks()[member], " called ", calls[member].str(), " (DTRAIN_DEBUG_COLLECTIVES: every rank of the ",
         group.str(), " raises this instead of hanging)");
  }
}

}  // namespace

void CollectiveChecker::check(ProcessGroup& group, const CollectiveCall& mine) {
  compare_calls(group, mine, gather_calls(group, mine));
}

void CollectiveChecker::check_point_to_point(ProcessGroup& group, const CollectiveCall& mine,
                                             const std::vector<PointToPoint>& operations) {
  const std::vector<CollectiveCall> calls = gather_calls(group, mine);
  compare_calls(group, mine, calls);
  // Every rank issued send_receive at this sequence number with valid arguments; each call's
  // numel is its rank's operation count, so every rank sizes the second exchange alike.
  std::vector<int64_t> operation_counts;
  for (const CollectiveCall& call : calls) operation_counts.push_back(call.numel);
  std::vector<std::vector<PointToPointSummary>> by_rank(group.size());
  {
    MemoryTagScope communication(MemoryTag::Communication);
    const int64_t longest = *std::max_element(operation_counts.begin(), operation_counts.end());
    if (longest == 0) return;

    Tensor sent = zeros({longest * kOperationWords}, {.dtype = kInt64});
    int64_t* words = sent.data_ptr<int64_t>();
    for (const PointToPointSummary& operation : summarize(operations)) {
      words[0] = static_cast<int64_t>(operation.kind);
      words[1] = operation.peer;
      words[2] = static_cast<int64_t>(operation.dtype);
      words[3] = operation.numel;
      words += kOperationWords;
    }
    Tensor received = empty({longest * kOperationWords * group.size()}, {.dtype = kInt64});
    group.backend_for(Device::cpu()).all_gather(sent, received)->wait();
    const int64_t* all = received.data_ptr<int64_t>();
    for (int member = 0; member < group.size(); ++member) {
      for (int64_t index = 0; index < operation_counts[member]; ++index) {
        const int64_t* operation = all + (member * longest + index) * kOperationWords;
        by_rank[member].push_back({.kind = static_cast<PointToPoint::Kind>(operation[0]),
                                   .peer = static_cast<int>(operation[1]),
                                   .dtype = static_cast<DType>(operation[2]),
                                   .numel = operation[3]});
      }
    }
  }
  // Every rank walks the same pairs in the same order, so every rank raises the same message.
  for (int from = 0; from < group.size(); ++from) {
    for (int to = 0; to < group.size(); ++to) {
      std::string error = pairing_error(from, to, by_rank[from], by_rank[to]);
      if (error.empty()) continue;
      fail(error, " (ranks of the ", group.str(), ", send_receive #", mine.sequence,
           "; DTRAIN_DEBUG_COLLECTIVES: every rank of the group raises this instead of hanging)");
    }
  }
}

}  // namespace dtrain::dist
