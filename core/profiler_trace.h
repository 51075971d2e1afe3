#pragma once
// The profiler's events as a Chrome trace (JSON, the "Trace Event Format" that chrome://tracing
// and Perfetto open): one complete event per op, node, collective and range on its thread's
// track, CUDA-event times on a track per device, contiguous() copies and host synchronisations
// as instants. The process is the rank (pid = rank, named "rank N").
#include <cstdint>
#include <string>
#include <vector>

#include "core/profiler_event.h"

namespace dtrain::profiler {

struct TraceProcess {
  int rank = 0;
  int world_size = 1;
};

std::string chrome_trace_json(const std::vector<Event>& events, const std::vector<Mark>& marks, int64_t wall_ns,
                              TraceProcess process);

}  // namespace dtrain::profiler
