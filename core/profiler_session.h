#pragma once
// Recording windows over the thread logs of core/profiler_recorder.cpp: what a Profile
// (core/profiler.h) opens and closes. Windows may overlap (a Profile in code while DTRAIN_PROFILE
// records the whole program); the logs are cleared when the last one closes.
#include <cstdint>
#include <vector>

#include "core/profiler_event.h"

namespace dtrain::profiler::detail {

// The host clock the profiler times with, in nanoseconds.
int64_t clock_ns();

// Starts recording (if no window was open) and returns the window's start on clock_ns().
int64_t begin_window();

struct Window {
  std::vector<Event> events;  // every thread's, by start time; times from the window's start
  std::vector<Mark> marks;
  int64_t wall_ns = 0;        // from begin_window to end_window
};

// The events that began and ended inside the window begun at start (depths counted within it), with
// their GPU times resolved (waiting for the device where needed). Stops recording when it was the
// last open window.
Window end_window(int64_t start);

}  // namespace dtrain::profiler::detail

namespace dtrain::profiler::detail {

// DTRAIN_PROFILE=path: starts the whole-program profile (at static initialisation) and registers
// its writer at exit; false when the variable is unset.
bool start_environment_profile();
// Called once the CUDA backend has loaded (core/cuda_device.cpp), so that the exit-time writer
// runs before the CUDA runtime's own teardown.
void cuda_runtime_loaded();

}  // namespace dtrain::profiler::detail
