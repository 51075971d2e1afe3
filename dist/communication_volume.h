#pragma once
// How much this process has handed to collectives: the figure behind "bytes per step" when
// comparing compressed gradients, local SGD and gossip with plain all-reduce. ProcessGroup records
// every collective it issues (dist/process_group.cpp), whatever the backend (MPI, NCCL, local).
//
// Payload bytes are what the caller hands over, not what the wire carries (a ring all-reduce
// sends about twice the tensor per rank; a hierarchical one less between hosts):
//   all_reduce, broadcast         the tensor
//   all_gather, reduce_scatter    the input
//   barrier                       nothing (counted as a collective)
//   send_receive                  the tensors it sends (one call, however many operations)
// Zero-size collectives, which communicate nothing, are not counted.
#include <cstdint>

namespace dtrain::dist {

struct CommunicationVolume {
  int64_t collectives = 0;
  int64_t payload_bytes = 0;
};

// Since the process started. Thread-safe; the two fields are read together (one snapshot).
CommunicationVolume communication_volume();

// Adds one collective of payload_bytes (ProcessGroup calls it; thread-safe).
void record_collective(int64_t payload_bytes);

}  // namespace dtrain::dist
