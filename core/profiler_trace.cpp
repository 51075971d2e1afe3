#include "core/profiler_trace.h"

#include <cstdio>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/profiler_table.h"

namespace dtrain::profiler {
namespace {

// Track ids of the CUDA devices' event timelines, after the host threads'.
constexpr int kDeviceTrackBase = 1000;

void append_string(std::string& out, std::string_view text) {
  out += '"';
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
          out += escaped;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

// Microseconds, the format's unit, with nanosecond digits.
void append_microseconds(std::string& out, int64_t ns) {
  char text[40];
  std::snprintf(text, sizeof(text), "%lld.%03lld", static_cast<long long>(ns / 1000), static_cast<long long>(ns % 1000));
  out += text;
}

void append_metadata(std::string& out, const char* name, int pid, int tid, const std::string& value) {
  out += "{\"ph\":\"M\",\"name\":\"";
  out += name;
  out += "\",\"pid\":" + std::to_string(pid) + ",\"tid\":" + std::to_string(tid) + ",\"args\":{\"name\":";
  append_string(out, value);
  out += "}},\n";
}

void append_event(std::string& out, const Event& event, int pid, int tid, int64_t start_ns, int64_t duration_ns,
                  const char* category) {
  out += "{\"ph\":\"X\",\"name\":";
  append_string(out, event.label());
  out += ",\"cat\":\"";
  out += category;
  out += "\",\"pid\":" + std::to_string(pid) + ",\"tid\":" + std::to_string(tid) + ",\"ts\":";
  append_microseconds(out, start_ns);
  out += ",\"dur\":";
  append_microseconds(out, duration_ns);
  out += ",\"args\":{\"inputs\":";
  append_string(out, format_inputs(event.inputs));
  out += ",\"device\":";
  append_string(out, event.device.str());
  out += ",\"contiguous_copies\":" + std::to_string(event.contiguous_copies);
  out += ",\"host_synchronizations\":" + std::to_string(event.host_synchronizations);
  if (event.kind == EventKind::Collective) out += ",\"bytes\":" + std::to_string(event.bytes);
  if (event.device_ms >= 0) {
    char text[40];
    std::snprintf(text, sizeof(text), ",\"device_ms\":%.6f", event.device_ms);
    out += text;
  }
  out += "}},\n";
}

}  // namespace

std::string chrome_trace_json(const std::vector<Event>& events, const std::vector<Mark>& marks, int64_t wall_ns,
                              TraceProcess process) {
  const int pid = process.rank;
  std::string out = "{\"traceEvents\":[\n";
  append_metadata(out, "process_name", pid, 0, "rank " + std::to_string(process.rank));
  std::set<int> threads, devices;
  for (const Event& event : events) {
    threads.insert(event.thread);
    if (event.device_ms >= 0) devices.insert(event.device.index);
  }
  for (const Mark& mark : marks) threads.insert(mark.thread);
  for (int thread : threads) append_metadata(out, "thread_name", pid, thread, "thread " + std::to_string(thread));
  for (int device : devices) {
    append_metadata(out, "thread_name", pid, kDeviceTrackBase + device, "cuda:" + std::to_string(device) + " (CUDA events)");
  }
  for (const Event& event : events) {
    append_event(out, event, pid, event.thread, event.start_ns, event.duration_ns(), event_kind_name(event.kind));
    if (event.device_ms >= 0 && event.device_start_ns >= 0) {
      append_event(out, event, pid, kDeviceTrackBase + event.device.index, event.device_start_ns,
                   static_cast<int64_t>(event.device_ms * 1e6), "cuda");
    }
  }
  for (const Mark& mark : marks) {
    const bool copy = mark.kind == MarkKind::ContiguousCopy;
    out += "{\"ph\":\"i\",\"s\":\"t\",\"name\":";
    append_string(out, copy ? "contiguous copy" : "host synchronization: " + mark.what);
    out += ",\"cat\":\"";
    out += copy ? "copy" : "sync";
    out += "\",\"pid\":" + std::to_string(pid) + ",\"tid\":" + std::to_string(mark.thread) + ",\"ts\":";
    append_microseconds(out, mark.time_ns);
    out += ",\"args\":{\"inside\":";
    append_string(out, mark.inside);
    if (copy) out += ",\"bytes\":" + std::to_string(mark.bytes) + ",\"dtype\":\"" + mark.what + "\"";
    out += "}},\n";
  }
  // The last entry without a trailing comma: the process's sort index (ranks in order).
  out += "{\"ph\":\"M\",\"name\":\"process_sort_index\",\"pid\":" + std::to_string(pid) +
         ",\"tid\":0,\"args\":{\"sort_index\":" + std::to_string(pid) + "}}\n],\n";
  out += "\"displayTimeUnit\":\"ms\",\n\"otherData\":{\"producer\":\"dtrain profiler\",\"rank\":" +
         std::to_string(process.rank) + ",\"world_size\":" + std::to_string(process.world_size) + ",\"wall_us\":";
  append_microseconds(out, wall_ns);
  out += "}}\n";
  return out;
}

}  // namespace dtrain::profiler
