#pragma once
// What the profiler records (core/profiler.h): one Event per op, autograd node, collective or
// user range, and one Mark per contiguous() copy and host-device synchronisation.
#include <cstdint>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/shape.h"

namespace dtrain::profiler {

enum class EventKind : uint8_t {
  Op,              // one op's forward: a kernel-table call, or an op that names itself (contiguous, layer_norm, ...)
  Backward,        // one autograd node's backward function (the ops it runs nest inside)
  Collective,      // issuing a collective (dist::ProcessGroup), with its bytes
  CollectiveWait,  // a Work handle's wait(): the host blocked on a collective
  Range,           // a user's profiler::Range ("step", "data", ...)
};
const char* event_kind_name(EventKind kind);  // "op", "backward", ...

// The shape and dtype of one input of an event.
struct TensorSummary {
  Shape shape;
  DType dtype = kFloat32;
};

struct Event {
  EventKind kind = EventKind::Op;
  std::string name;                    // "matmul", "layer_norm" (for Backward: the node's op)
  std::vector<TensorSummary> inputs;   // of an op: its tensors; of a node: the gradients it received
  Device device;
  int64_t start_ns = 0;                // host clock, nanoseconds from the profile's start
  int64_t end_ns = 0;
  // CUDA: the time between two events recorded on the op's stream around it, and where the first
  // one fell on the profile's clock (aligned at the first event of the profile on that device);
  // negative where not measured (CPU ops, or a profile stopped before the GPU got there).
  double device_ms = -1.0;
  int64_t device_start_ns = -1;
  int depth = 0;                       // events open on this thread when this one began
  int thread = 0;                      // the recording thread, numbered from 0 in order of first use
  int64_t contiguous_copies = 0;       // contiguous() copies made while this was the innermost event
  int64_t host_synchronizations = 0;   // host waits for the device while this was the innermost event
  int64_t bytes = 0;                   // collectives: the bytes of the buffer they reduce or move

  int64_t duration_ns() const { return end_ns - start_ns; }
  // The name the table groups by: "matmul", "matmul (backward)", "all_reduce (wait)".
  std::string label() const;
};

enum class MarkKind : uint8_t { ContiguousCopy, HostSynchronization };

// An instant: a copy made by contiguous() or a host-device synchronisation.
struct Mark {
  MarkKind kind = MarkKind::ContiguousCopy;
  std::string what;      // the synchronising call ("copy_to_host"), or the copied tensor's dtype
  std::string inside;    // the label of the innermost open event, empty when none
  int64_t time_ns = 0;   // from the profile's start
  int64_t bytes = 0;     // contiguous copies: the bytes copied
  int thread = 0;
};

}  // namespace dtrain::profiler
