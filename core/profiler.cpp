#include "core/profiler.h"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/cuda_device.h"
#include "core/error.h"
#include "core/profiler_session.h"

namespace dtrain::profiler {

Profile::Profile() : start_ns_(detail::begin_window()) {}

Profile::~Profile() { stop(); }

void Profile::stop() {
  if (stopped_) return;
  stopped_ = true;
  detail::Window window = detail::end_window(start_ns_);
  events_ = std::move(window.events);
  marks_ = std::move(window.marks);
  wall_ns_ = window.wall_ns;
}

const std::vector<Event>& Profile::events() {
  stop();
  return events_;
}

const std::vector<Mark>& Profile::marks() {
  stop();
  return marks_;
}

int64_t Profile::wall_ns() {
  stop();
  return wall_ns_;
}

int64_t Profile::contiguous_copies() {
  int64_t count = 0;
  for (const Mark& mark : marks()) count += mark.kind == MarkKind::ContiguousCopy ? 1 : 0;
  return count;
}

int64_t Profile::host_synchronizations() {
  int64_t count = 0;
  for (const Mark& mark : marks()) count += mark.kind == MarkKind::HostSynchronization ? 1 : 0;
  return count;
}

int64_t Profile::collective_bytes() {
  int64_t bytes = 0;
  for (const Event& event : events()) bytes += event.kind == EventKind::Collective ? event.bytes : 0;
  return bytes;
}

std::vector<OpSummary> Profile::summary(const TableOptions& options) {
  stop();
  return summarize(events_, wall_ns_, options);
}

std::string Profile::table(const TableOptions& options) {
  return format_table(summary(options), wall_ns_, events_.size(), options.group_by_input_shapes);
}

std::string Profile::chrome_trace() {
  stop();
  return chrome_trace_json(events_, marks_, wall_ns_, process());
}

void Profile::write_chrome_trace(const std::string& path) {
  const std::string text = chrome_trace();
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) fail("profiler: cannot open ", path, " to write the Chrome trace");
  file << text;
  file.close();
  if (!file) fail("profiler: writing the Chrome trace to ", path, " failed");
}

namespace {

struct ProcessState {
  std::mutex mutex;
  bool set = false;
  TraceProcess process;
};

ProcessState& process_state() {
  static auto* state = new ProcessState();  // never destroyed: read at exit
  return *state;
}

int environment_int(const char* const* names, int fallback) {
  for (const char* const* name = names; *name != nullptr; ++name) {
    if (const char* value = std::getenv(*name); value != nullptr && *value != '\0') return std::atoi(value);
  }
  return fallback;
}

}  // namespace

void set_process(int rank, int world_size) {
  ProcessState& state = process_state();
  std::lock_guard lock(state.mutex);
  state.set = true;
  state.process = {rank, world_size};
}

TraceProcess process() {
  ProcessState& state = process_state();
  {
    std::lock_guard lock(state.mutex);
    if (state.set) return state.process;
  }
  static const char* const kRankVariables[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", nullptr};
  static const char* const kSizeVariables[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", nullptr};
  return {environment_int(kRankVariables, 0), environment_int(kSizeVariables, 1)};
}

std::string rank_tagged_path(const std::string& path, TraceProcess process) {
  if (process.world_size <= 1) return path;
  const std::string tag = ".rank" + std::to_string(process.rank);
  const size_t slash = path.find_last_of('/');
  const size_t dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash) || dot == slash + 1) return path + tag;
  return path.substr(0, dot) + tag + path.substr(dot);
}

// --- DTRAIN_PROFILE: the whole program, written at exit --------------------------------------

namespace detail {
namespace {

struct EnvironmentProfile {
  std::mutex mutex;
  std::string path;
  Profile* profile = nullptr;  // never destroyed: other exit handlers may still run ops
  bool written = false;
};

EnvironmentProfile& environment_profile() {
  static auto* state = new EnvironmentProfile();
  return *state;
}

// The table's file: trace.json -> trace.txt (trace -> trace.txt).
std::string table_path(const std::string& trace_path) {
  const size_t slash = trace_path.find_last_of('/');
  const size_t dot = trace_path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return trace_path + ".txt";
  return trace_path.substr(0, dot) + ".txt";
}

void write_environment_profile() {
  EnvironmentProfile& state = environment_profile();
  std::lock_guard lock(state.mutex);
  if (state.written || state.profile == nullptr) return;
  state.written = true;
  try {
    const std::string path = rank_tagged_path(state.path, process());
    state.profile->write_chrome_trace(path);
    const std::string table = state.profile->table();
    std::ofstream(table_path(path)) << table;
    std::fprintf(stderr, "dtrain profiler: %zu events written to %s (table: %s)\n", state.profile->events().size(),
                 path.c_str(), table_path(path).c_str());
  } catch (const std::exception& error) {
    std::fprintf(stderr, "dtrain profiler: DTRAIN_PROFILE could not be written: %s\n", error.what());
  }
}

}  // namespace

bool start_environment_profile() {
  const char* path = std::getenv("DTRAIN_PROFILE");
  if (path == nullptr || *path == '\0') return false;
  EnvironmentProfile& state = environment_profile();
  std::lock_guard lock(state.mutex);
  state.path = path;
  state.profile = new Profile();
  std::atexit(write_environment_profile);
  return true;
}

void cuda_runtime_loaded() {
  // Exit handlers run in reverse order of registration: registered again now, the trace is
  // written before the CUDA runtime (loaded just now) tears down, so device times still resolve.
  EnvironmentProfile& state = environment_profile();
  std::lock_guard lock(state.mutex);
  if (state.profile != nullptr) std::atexit(write_environment_profile);
}

}  // namespace detail
}  // namespace dtrain::profiler
