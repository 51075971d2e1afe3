#include "core/profiler_table.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace dtrain::profiler {
namespace {

// Per event (in start order, as a window lists them): its time less that of the events nested
// directly inside it on its thread.
std::vector<int64_t> self_times(const std::vector<Event>& events) {
  std::vector<int64_t> self(events.size());
  std::map<int, std::vector<size_t>> open;  // per thread: the enclosing events
  for (size_t i = 0; i < events.size(); ++i) {
    const Event& event = events[i];
    self[i] = event.duration_ns();
    std::vector<size_t>& stack = open[event.thread];
    while (!stack.empty() && events[stack.back()].end_ns <= event.start_ns) stack.pop_back();
    if (!stack.empty()) self[stack.back()] -= event.duration_ns();
    stack.push_back(i);
  }
  return self;
}

std::string milliseconds(int64_t ns) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.3f", static_cast<double>(ns) / 1e6);
  return text;
}

std::string microseconds(double ns) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f", ns / 1e3);
  return text;
}

std::string percent(double share) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f%%", share * 100.0);
  return text;
}

std::string bytes_text(int64_t bytes) {
  if (bytes == 0) return "0";
  char text[32];
  if (bytes >= (int64_t{1} << 20)) {
    std::snprintf(text, sizeof(text), "%.2f MiB", static_cast<double>(bytes) / (1 << 20));
  } else if (bytes >= 1024) {
    std::snprintf(text, sizeof(text), "%.2f KiB", static_cast<double>(bytes) / 1024);
  } else {
    std::snprintf(text, sizeof(text), "%lld B", static_cast<long long>(bytes));
  }
  return text;
}

}  // namespace

std::string format_inputs(const std::vector<TensorSummary>& inputs) {
  std::ostringstream text;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (i > 0) text << ", ";
    text << inputs[i].shape << " " << dtype_name(inputs[i].dtype);
  }
  return text.str();
}

std::vector<OpSummary> summarize(const std::vector<Event>& events, int64_t wall_ns, const TableOptions& options) {
  const std::vector<int64_t> self = self_times(events);
  std::map<std::pair<std::string, std::string>, OpSummary> rows;
  for (size_t i = 0; i < events.size(); ++i) {
    const Event& event = events[i];
    std::string shapes = options.group_by_input_shapes ? format_inputs(event.inputs) : std::string();
    OpSummary& row = rows[{event.label(), shapes}];
    if (row.calls == 0) {
      row.label = event.label();
      row.kind = event.kind;
      row.input_shapes = std::move(shapes);
    }
    ++row.calls;
    row.total_ns += event.duration_ns();
    row.self_ns += self[i];
    if (event.device_ms >= 0) row.device_ms = std::max(row.device_ms, 0.0) + event.device_ms;
    row.contiguous_copies += event.contiguous_copies;
    row.host_synchronizations += event.host_synchronizations;
    row.bytes += event.bytes;
  }
  std::vector<OpSummary> sorted;
  sorted.reserve(rows.size());
  const double wall = wall_ns > 0 ? static_cast<double>(wall_ns) : 1.0;
  for (auto& [key, row] : rows) {
    row.total_share = static_cast<double>(row.total_ns) / wall;
    row.self_share = static_cast<double>(row.self_ns) / wall;
    sorted.push_back(std::move(row));
  }
  auto key = [&](const OpSummary& row) -> double {
    switch (options.sort_by) {
      case SortBy::Total: return static_cast<double>(row.total_ns);
      case SortBy::Self: return static_cast<double>(row.self_ns);
      case SortBy::Calls: return static_cast<double>(row.calls);
      case SortBy::Mean: return row.mean_ns();
      case SortBy::DeviceTotal: return row.device_ms;
      case SortBy::Name: return 0.0;
    }
    return 0.0;
  };
  std::stable_sort(sorted.begin(), sorted.end(), [&](const OpSummary& a, const OpSummary& b) {
    if (options.sort_by == SortBy::Name) return a.label < b.label;
    return key(a) > key(b);
  });
  if (options.row_limit > 0 && sorted.size() > options.row_limit) sorted.resize(options.row_limit);
  return sorted;
}

std::string format_table(const std::vector<OpSummary>& rows, int64_t wall_ns, size_t event_count, bool with_shapes) {
  const bool with_device = std::any_of(rows.begin(), rows.end(), [](const OpSummary& row) { return row.device_ms >= 0; });
  std::vector<std::string> header = {"Name", "Calls", "Total ms", "Self ms", "Mean us", "Total %", "Self %"};
  if (with_device) header.push_back("Device ms");
  for (const char* column : {"Copies", "Syncs", "Bytes"}) header.push_back(column);
  if (with_shapes) header.push_back("Input shapes");

  std::vector<std::vector<std::string>> cells;
  for (const OpSummary& row : rows) {
    std::vector<std::string> line = {row.label,
                                     std::to_string(row.calls),
                                     milliseconds(row.total_ns),
                                     milliseconds(row.self_ns),
                                     microseconds(row.mean_ns()),
                                     percent(row.total_share),
                                     percent(row.self_share)};
    if (with_device) line.push_back(row.device_ms >= 0 ? milliseconds(static_cast<int64_t>(row.device_ms * 1e6)) : "-");
    line.push_back(std::to_string(row.contiguous_copies));
    line.push_back(std::to_string(row.host_synchronizations));
    line.push_back(bytes_text(row.bytes));
    if (with_shapes) line.push_back(row.input_shapes);
    cells.push_back(std::move(line));
  }
  std::vector<size_t> widths(header.size());
  for (size_t c = 0; c < header.size(); ++c) {
    widths[c] = header[c].size();
    for (const auto& line : cells) widths[c] = std::max(widths[c], line[c].size());
  }
  // The name and the shapes align left, numbers right.
  auto is_text = [&](size_t column) { return column == 0 || (with_shapes && column + 1 == header.size()); };
  auto emit = [&](std::ostringstream& out, const std::vector<std::string>& line) {
    for (size_t c = 0; c < line.size(); ++c) {
      if (c > 0) out << "  ";
      const std::string padding(widths[c] - line[c].size(), ' ');
      out << (is_text(c) ? line[c] + padding : padding + line[c]);
    }
    out << "\n";
  };
  std::ostringstream out;
  std::string rule;
  for (size_t c = 0; c < widths.size(); ++c) rule += (c > 0 ? "  " : "") + std::string(widths[c], '-');
  out << rule << "\n";
  emit(out, header);
  out << rule << "\n";
  for (const auto& line : cells) emit(out, line);
  out << rule << "\n";
  out << "Wall time profiled: " << milliseconds(wall_ns) << " ms; " << event_count
      << " events. Self: total less the events nested inside (the ops an autograd node runs, a kernel's own ops).\n";
  return out.str();
}

}  // namespace dtrain::profiler
