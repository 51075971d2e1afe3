#pragma once
// The clocks and the statistic the benchmarks share: wall time between two steady_clock points,
// CPU time of the process or of the calling thread (on a machine shared with other work, wall
// time mixes in their load, CPU time does not), and the median of a set of timings.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <ratio>
#include <vector>

namespace dtrain::bench {

using Clock = std::chrono::steady_clock;

inline double milliseconds(Clock::time_point begin, Clock::time_point end) {
  return std::chrono::duration<double, std::milli>(end - begin).count();
}

// CPU time of the whole process (every thread: compute, and a communication thread that waits in MPI).
inline double process_cpu_milliseconds() {
  timespec now{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  return 1e3 * static_cast<double>(now.tv_sec) + 1e-6 * static_cast<double>(now.tv_nsec);
}

// CPU time of the calling thread alone (the one that computes).
inline double thread_cpu_milliseconds() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return 1e3 * static_cast<double>(now.tv_sec) + 1e-6 * static_cast<double>(now.tv_nsec);
}

// The middle value, or the mean of the two middle ones for an even count.
inline double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

}  // namespace dtrain::bench
