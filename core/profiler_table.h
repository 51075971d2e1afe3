#pragma once
// The profiler's table: events grouped by name (as PyTorch's key_averages().table()), with
// calls, total and self time, mean, each one's share of the profiled wall time, device time,
// contiguous() copies, host synchronisations and collective bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/profiler_event.h"

namespace dtrain::profiler {

enum class SortBy : uint8_t { Total, Self, Calls, Mean, DeviceTotal, Name };

struct TableOptions {
  SortBy sort_by = SortBy::Total;
  size_t row_limit = 0;              // 0: every row
  bool group_by_input_shapes = false;  // one row per name and input shapes
};

// One row: every event with one label (and input shapes, when grouped by them).
struct OpSummary {
  std::string label;      // Event::label(): "matmul", "matmul (backward)"
  EventKind kind = EventKind::Op;
  std::string input_shapes;  // "[64, 32] float32, [32, 16] float32" (grouped by shapes only)
  int64_t calls = 0;
  int64_t total_ns = 0;   // wall time between each event's start and end, summed
  int64_t self_ns = 0;    // the same less the time of the events nested directly inside
  double device_ms = -1;  // summed CUDA-event times; negative when none was measured
  int64_t contiguous_copies = 0;
  int64_t host_synchronizations = 0;
  int64_t bytes = 0;
  double total_share = 0;  // total_ns / the profile's wall time
  double self_share = 0;

  double mean_ns() const { return calls == 0 ? 0.0 : static_cast<double>(total_ns) / static_cast<double>(calls); }
};

// "[64, 32] float32, [32] float32"
std::string format_inputs(const std::vector<TensorSummary>& inputs);

// The rows, sorted (largest first; by name A to Z), cut at row_limit.
std::vector<OpSummary> summarize(const std::vector<Event>& events, int64_t wall_ns, const TableOptions& options);

// The rows as a fixed-width text table with a header and a footer line naming the wall time.
std::string format_table(const std::vector<OpSummary>& rows, int64_t wall_ns, size_t event_count, bool with_shapes);

}  // namespace dtrain::profiler
