#include "dist/mpi_point_to_point.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <thread>

#include "core/error.h"
#include "dist/mpi_backend.h"
#include "dist/mpi_error.h"

namespace dtrain::dist {
namespace {

// send_receive's messages carry this tag, apart from anything else a program sends on the group.
constexpr int kPointToPointTag = 17;
// MPI counts are int: a tensor travels in messages of at most this many elements.
constexpr int64_t kMaxMessageElements = int64_t{1} << 30;

// One MPI message: a chunk of one operation's tensor.
struct Message {
  size_t operation = 0;
  char* data = nullptr;
  int count = 0;
};

// The messages of one operation, in order; an empty tensor is one empty message, so that it pairs
// with its peer's (empty or not: a mismatch is then reported, not left unreceived).
std::vector<Message> messages_of(size_t index, const PointToPoint& operation) {
  std::vector<Message> messages;
  const Tensor& tensor = operation.tensor;
  char* data = static_cast<char*>(tensor.data());
  for (int64_t start = 0; start == 0 || start < tensor.numel(); start += kMaxMessageElements) {
    const int count = static_cast<int>(std::min(kMaxMessageElements, tensor.numel() - start));
    messages.push_back({index, data + start * static_cast<int64_t>(tensor.element_size()), count});
  }
  return messages;
}

// Completes what was posted (cancelling receives) before an error leaves the task: MPI must not
// write into tensors the caller may free once wait() has raised.
void complete_posted(std::vector<MPI_Request>& requests) {
  MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE);
}

}  // namespace

void exchange_point_to_point(const std::vector<PointToPoint>& operations, MPI_Comm comm, int group_size) {
  std::vector<MPI_Request> requests;
  std::vector<size_t> request_operations;  // which operation each request serves
  // Receives still to match, per peer, in the order they were given (MPI's order between a pair).
  std::vector<std::deque<Message>> expected(group_size);
  size_t unmatched = 0;
  for (size_t index = 0; index < operations.size(); ++index) {
    const PointToPoint& operation = operations[index];
    for (const Message& message : messages_of(index, operation)) {
      if (operation.kind == PointToPoint::Receive) {
        expected[operation.peer].push_back(message);
        ++unmatched;
        continue;
      }
      MPI_Request request = MPI_REQUEST_NULL;
      const int code = MPI_Isend(message.data, message.count, mpi_datatype(operation.tensor.dtype()), operation.peer,
                                 kPointToPointTag, comm, &request);
      if (code != MPI_SUCCESS) complete_posted(requests);
      check_mpi(code, "MPI_Isend");
      requests.push_back(request);
      request_operations.push_back(index);
    }
  }

  std::string size_mismatch;  // the first message whose size differed from its receive's
  while (unmatched > 0) {
    bool matched_any = false;
    for (int peer = 0; peer < group_size; ++peer) {
      if (expected[peer].empty()) continue;
      int arrived = 0;
      MPI_Message handle = MPI_MESSAGE_NULL;
      MPI_Status status;
      int code = MPI_Improbe(peer, kPointToPointTag, comm, &arrived, &handle, &status);
      if (code != MPI_SUCCESS) complete_posted(requests);
      check_mpi(code, "MPI_Improbe");
      if (!arrived) continue;
      const Message message = expected[peer].front();
      expected[peer].pop_front();
      --unmatched;
      matched_any = true;
      const Tensor& tensor = operations[message.operation].tensor;
      int bytes = 0;
      MPI_Get_count(&status, MPI_BYTE, &bytes);
      const auto expected_bytes = static_cast<int64_t>(message.count) * static_cast<int64_t>(tensor.element_size());
      if (bytes == expected_bytes) {
        MPI_Request request = MPI_REQUEST_NULL;
        code = MPI_Imrecv(message.data, message.count, mpi_datatype(tensor.dtype()), &handle, &request);
        if (code != MPI_SUCCESS) complete_posted(requests);
        check_mpi(code, "MPI_Imrecv");
        requests.push_back(request);
        request_operations.push_back(message.operation);
        continue;
      }
      // Received whole, and dropped: the next message from this peer is the next one sent.
      std::vector<char> scratch(static_cast<size_t>(std::max(bytes, 1)));
      code = MPI_Mrecv(scratch.data(), bytes, MPI_BYTE, &handle, MPI_STATUS_IGNORE);
      if (code != MPI_SUCCESS) complete_posted(requests);
      check_mpi(code, "MPI_Mrecv");
      if (size_mismatch.empty()) {
        size_mismatch = detail::concat("send_receive: the receive of operation ", message.operation, " from rank ", peer,
                                       " expected a message of ", message.count, " elements of ", tensor.dtype(), " (",
                                       expected_bytes, " bytes), got ",
                                       bytes, " bytes (the send and its receive must have the same dtype and size)");
      }
    }
    // Nothing arrived yet: let the ranks that share this core compute (the sends progress inside
    // the next probe).
    if (!matched_any) std::this_thread::yield();
  }

  std::vector<MPI_Status> statuses(requests.size());
  const int code = MPI_Waitall(static_cast<int>(requests.size()), requests.data(), statuses.data());
  if (code == MPI_ERR_IN_STATUS) {
    // Each status holds its own request's error.
    for (size_t request = 0; request < statuses.size(); ++request) {
      const int error = statuses[request].MPI_ERROR;
      if (error == MPI_SUCCESS || error == MPI_ERR_PENDING) continue;
      const PointToPoint& operation = operations[request_operations[request]];
      check_mpi(error, detail::concat("MPI_Waitall (the ", point_to_point_kind_name(operation.kind), " of operation ",
                                      request_operations[request], ", peer rank ", operation.peer, ")")
                           .c_str());
    }
  }
  check_mpi(code, "MPI_Waitall");
  if (!size_mismatch.empty()) fail(size_mismatch);
}

}  // namespace dtrain::dist
