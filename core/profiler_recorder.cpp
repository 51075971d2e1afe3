// The thread logs the profiler's hooks write to, and the recording windows over them.
//
// Each thread appends to its own log (a mutex it almost never shares: a stopping profile reads
// the logs); events nest through the log's stack of open events. Host times come from the
// steady clock; an op on a CUDA device also gets two events recorded on its stream, resolved to
// a device time when the window closes.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/cuda_device.h"
#include "core/profiler_recorder.h"
#include "core/profiler_session.h"
#include "core/tensor.h"

namespace dtrain::profiler::detail {

std::atomic<bool> g_recording{false};

namespace {

struct GpuMarks {  // the CUDA events around one event (null: none)
  void* start = nullptr;
  void* end = nullptr;
};

struct ThreadLog {
  std::mutex mutex;
  int thread = 0;
  uint64_t generation = 0;
  std::vector<Event> events;  // host times absolute on clock_ns()
  std::vector<GpuMarks> gpu;  // parallel to events
  std::vector<Mark> marks;
  std::vector<int64_t> open;  // indices of the open events, innermost last
  std::vector<const char*> owned;  // per open event: the kernel it owns (kAnyKernel, or null)
};

// What a kernel call's event owns: every kernel call made inside it.
const char* const kAnyKernel = "*";

struct DeviceTimeline {  // one CUDA device's reference: an event recorded at a known host time
  void* reference = nullptr;
  int64_t reference_ns = 0;
  std::vector<void*> free_events;
};

struct Registry {
  std::mutex mutex;
  std::vector<std::shared_ptr<ThreadLog>> logs;
  std::atomic<uint64_t> generation{1};  // bumped when the last window closes: older logs are stale
  int open_windows = 0;
  std::map<int, DeviceTimeline> devices;
};

Registry& registry() {
  static auto* instance = new Registry();  // never destroyed: DTRAIN_PROFILE writes at exit
  return *instance;
}

thread_local std::shared_ptr<ThreadLog> t_log;

// This thread's log, emptied first if it holds a closed window's events.
ThreadLog& this_thread_log() {
  Registry& state = registry();
  if (!t_log) {
    auto created = std::make_shared<ThreadLog>();
    std::lock_guard lock(state.mutex);
    created->thread = static_cast<int>(state.logs.size());
    state.logs.push_back(created);
    t_log = std::move(created);
  }
  ThreadLog& log = *t_log;
  const uint64_t generation = state.generation.load(std::memory_order_acquire);
  if (log.generation != generation) {
    std::lock_guard lock(log.mutex);
    log.events.clear();
    log.gpu.clear();
    log.marks.clear();
    log.open.clear();
    log.owned.clear();
    log.generation = generation;
  }
  return log;
}

// A timing event recorded now on the current stream of device; the device's reference is set
// at its first one.
void* record_gpu_event(Device device) {
  cuda::detail::Runtime& runtime = cuda::detail::runtime();
  Registry& state = registry();
  void* event = nullptr;
  {
    std::lock_guard lock(state.mutex);
    DeviceTimeline& timeline = state.devices[device.index];
    if (timeline.reference == nullptr) {
      timeline.reference = runtime.create_timing_event(device.index);
      runtime.record_timing_event(timeline.reference, device.index);
      timeline.reference_ns = clock_ns();
    }
    if (!timeline.free_events.empty()) {
      event = timeline.free_events.back();
      timeline.free_events.pop_back();
    }
  }
  if (event == nullptr) event = runtime.create_timing_event(device.index);
  runtime.record_timing_event(event, device.index);
  return event;
}

void summarize(const Tensor& tensor, std::vector<TensorSummary>& inputs) {
  if (tensor.defined()) inputs.push_back({tensor.shape(), tensor.dtype()});
}

// Opens an event on this thread's log; -1 when a kernel is absorbed by the op around it.
int64_t open_event(EventKind kind, std::string_view name, std::vector<TensorSummary> inputs, Device device,
                   const char* owned_kernel, bool kernel, uint64_t& generation) {
  ThreadLog& log = this_thread_log();
  std::lock_guard lock(log.mutex);
  if (kernel && !log.owned.empty() && log.owned.back() != nullptr &&
      (log.owned.back() == kAnyKernel || name == log.owned.back())) {
    return -1;  // part of the op around it
  }
  Event event;
  event.kind = kind;
  event.name = std::string(name);
  event.inputs = std::move(inputs);
  event.device = device;
  event.depth = static_cast<int>(log.open.size());
  event.thread = log.thread;
  GpuMarks gpu;
  if (device.is_cuda()) gpu.start = record_gpu_event(device);
  event.start_ns = clock_ns();  // last: the bookkeeping above is not the op's time
  const auto index = static_cast<int64_t>(log.events.size());
  log.events.push_back(std::move(event));
  log.gpu.push_back(gpu);
  log.open.push_back(index);
  log.owned.push_back(kernel ? kAnyKernel : owned_kernel);
  generation = log.generation;
  return index;
}

// Removes index from the log's open events (normally the innermost).
void forget_open(ThreadLog& log, int64_t index) {
  for (size_t i = log.open.size(); i-- > 0;) {
    if (log.open[i] != index) continue;
    log.open.erase(log.open.begin() + static_cast<std::ptrdiff_t>(i));
    log.owned.erase(log.owned.begin() + static_cast<std::ptrdiff_t>(i));
    return;
  }
}

Event* innermost_open(ThreadLog& log) { return log.open.empty() ? nullptr : &log.events[log.open.back()]; }

void add_mark(MarkKind kind, std::string what, int64_t bytes) {
  const int64_t now = clock_ns();
  ThreadLog& log = this_thread_log();
  std::lock_guard lock(log.mutex);
  Mark mark;
  mark.kind = kind;
  mark.what = std::move(what);
  mark.time_ns = now;
  mark.bytes = bytes;
  mark.thread = log.thread;
  if (Event* inside = innermost_open(log)) {
    mark.inside = inside->label();
    if (kind == MarkKind::ContiguousCopy) {
      ++inside->contiguous_copies;
    } else {
      ++inside->host_synchronizations;
    }
  }
  log.marks.push_back(std::move(mark));
}

}  // namespace

int64_t clock_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void Scope::open(EventKind kind, std::string_view name, const Tensor* const* inputs, size_t count,
                 const char* owned_kernel, bool kernel) {
  std::vector<TensorSummary> summaries;
  summaries.reserve(count);
  Device device = Device::cpu();
  bool device_found = false;
  for (size_t i = 0; i < count; ++i) {
    if (inputs[i] == nullptr || !inputs[i]->defined()) continue;
    if (!device_found) device = inputs[i]->device();
    device_found = true;
    summarize(*inputs[i], summaries);
  }
  index_ = open_event(kind, name, std::move(summaries), device, owned_kernel, kernel, generation_);
}

void Scope::open(EventKind kind, std::string_view name, const std::vector<Tensor>& inputs, Device device) {
  std::vector<TensorSummary> summaries;
  summaries.reserve(inputs.size());
  for (const Tensor& input : inputs) summarize(input, summaries);
  index_ = open_event(kind, name, std::move(summaries), device, nullptr, /*kernel=*/false, generation_);
}

void Scope::close() {
  const int64_t now = clock_ns();
  const int64_t index = index_;
  index_ = -1;
  ThreadLog& log = *t_log;
  std::lock_guard lock(log.mutex);
  if (log.generation != generation_) return;  // the window closed meanwhile and the log was emptied
  Event& event = log.events[index];
  event.end_ns = now;
  if (event.device.is_cuda()) log.gpu[index].end = record_gpu_event(event.device);
  forget_open(log, index);
}

void Scope::set_bytes(int64_t bytes) {
  if (index_ < 0) return;
  ThreadLog& log = *t_log;
  std::lock_guard lock(log.mutex);
  if (log.generation == generation_) log.events[index_].bytes = bytes;
}

void Scope::cancel() {
  if (index_ < 0) return;
  const int64_t index = index_;
  index_ = -1;
  ThreadLog& log = *t_log;
  std::lock_guard lock(log.mutex);
  if (log.generation != generation_) return;
  // Only the newest event can be dropped outright; an older one (something opened inside it and
  // is still open) is marked empty and left out when the window closes.
  forget_open(log, index);
  if (index + 1 == static_cast<int64_t>(log.events.size()) && log.gpu[index].start == nullptr) {
    log.events.pop_back();
    log.gpu.pop_back();
  } else {
    log.events[index].end_ns = log.events[index].start_ns - 1;  // never inside a window
  }
}

void ContiguousCopyScope::open(const Tensor& x) {
  add_mark(MarkKind::ContiguousCopy, dtype_name(x.dtype()), static_cast<int64_t>(x.nbytes()));
  const Tensor* inputs[] = {&x};
  scope_.open(EventKind::Op, "contiguous", inputs, 1, /*owned_kernel=*/"copy", /*kernel=*/false);
}

void note_host_synchronization(const char* what) { add_mark(MarkKind::HostSynchronization, what, 0); }

int64_t begin_window() {
  Registry& state = registry();
  std::lock_guard lock(state.mutex);
  if (state.open_windows++ == 0) g_recording.store(true, std::memory_order_relaxed);
  return clock_ns();
}

namespace {

// Device times of the log's events inside [start, end], from their CUDA events (which are then
// returned to the pool). Called with the log's mutex held.
void resolve_gpu_times(ThreadLog& log, int64_t start, int64_t end) {
  Registry& state = registry();
  for (size_t i = 0; i < log.events.size(); ++i) {
    GpuMarks& gpu = log.gpu[i];
    Event& event = log.events[i];
    if (gpu.start == nullptr || gpu.end == nullptr || event.start_ns < start || event.end_ns > end) continue;
    cuda::detail::Runtime& runtime = cuda::detail::runtime();
    void* reference = nullptr;
    int64_t reference_ns = 0;
    {
      std::lock_guard lock(state.mutex);
      DeviceTimeline& timeline = state.devices[event.device.index];
      reference = timeline.reference;
      reference_ns = timeline.reference_ns;
    }
    event.device_ms = runtime.timing_event_elapsed_ms(gpu.start, gpu.end);
    const double offset_ms = runtime.timing_event_elapsed_ms(reference, gpu.start);
    event.device_start_ns = reference_ns + static_cast<int64_t>(offset_ms * 1e6);
    std::lock_guard lock(state.mutex);
    DeviceTimeline& timeline = state.devices[event.device.index];
    timeline.free_events.push_back(gpu.start);
    timeline.free_events.push_back(gpu.end);
    gpu = GpuMarks{};
  }
}

// Depth within the window: the enclosing events of one thread that are also in it.
void count_depths(std::vector<Event>& events) {
  std::map<int, std::vector<int64_t>> open_ends;  // per thread: ends of the enclosing events
  for (Event& event : events) {
    std::vector<int64_t>& stack = open_ends[event.thread];
    while (!stack.empty() && stack.back() <= event.start_ns) stack.pop_back();
    event.depth = static_cast<int>(stack.size());
    stack.push_back(event.end_ns);
  }
}

}  // namespace

Window end_window(int64_t start) {
  const int64_t end = clock_ns();
  Registry& state = registry();
  std::vector<std::shared_ptr<ThreadLog>> logs;
  {
    std::lock_guard lock(state.mutex);
    logs = state.logs;
  }
  const uint64_t generation = state.generation.load(std::memory_order_acquire);
  Window window;
  window.wall_ns = end - start;
  for (const std::shared_ptr<ThreadLog>& log : logs) {
    std::lock_guard lock(log->mutex);
    if (log->generation != generation) continue;
    resolve_gpu_times(*log, start, end);
    for (const Event& event : log->events) {
      if (event.start_ns < start || event.end_ns > end || event.end_ns < event.start_ns) continue;
      if (event.end_ns == 0) continue;  // still open
      Event copy = event;
      copy.start_ns -= start;
      copy.end_ns -= start;
      if (copy.device_start_ns >= 0) copy.device_start_ns -= start;
      window.events.push_back(std::move(copy));
    }
    for (const Mark& mark : log->marks) {
      if (mark.time_ns < start || mark.time_ns > end) continue;
      Mark copy = mark;
      copy.time_ns -= start;
      window.marks.push_back(std::move(copy));
    }
  }
  // By start; an enclosing event before what it encloses when both start on one tick.
  std::stable_sort(window.events.begin(), window.events.end(), [](const Event& a, const Event& b) {
    if (a.start_ns != b.start_ns) return a.start_ns < b.start_ns;
    return a.end_ns > b.end_ns;
  });
  std::stable_sort(window.marks.begin(), window.marks.end(),
                   [](const Mark& a, const Mark& b) { return a.time_ns < b.time_ns; });
  count_depths(window.events);
  {
    std::lock_guard lock(state.mutex);
    if (--state.open_windows == 0) {
      g_recording.store(false, std::memory_order_relaxed);
      state.generation.fetch_add(1, std::memory_order_acq_rel);  // each log empties at its next use
      for (auto& [index, timeline] : state.devices) {
        if (timeline.reference != nullptr) timeline.free_events.push_back(timeline.reference);
        timeline.reference = nullptr;
      }
    }
  }
  return window;
}

}  // namespace dtrain::profiler::detail

namespace dtrain::profiler::detail {
// DTRAIN_PROFILE starts recording before main (this file is linked into every program that
// dispatches an op).
[[maybe_unused]] const bool g_environment_profile_started = start_environment_profile();
}  // namespace dtrain::profiler::detail
