#pragma once
// dtrain's profiler: where a step's time goes, op by op.
//
//   profiler::Profile profile;              // records from here ...
//   train_step();
//   profile.stop();                          // ... to here (or to the end of its scope)
//   std::printf("%s", profile.table().c_str());
//   profile.write_chrome_trace("step.json"); // chrome://tracing or ui.perfetto.dev
//
// Recorded: every op's forward (each kernel-table call, core/backend.h, with its inputs' shapes
// and dtypes and its device), every autograd node's backward, collectives with their bytes and
// the waits on them, contiguous() copies and host-device synchronisations (counted against the
// op or node that made them), and profiler::Range stretches. Host times come from the steady
// clock; on a GPU each op also gets CUDA events on its stream, resolved when the profile stops.
//
// Any program: DTRAIN_PROFILE=trace.json records the whole run and writes the trace at exit
// (under mpirun one file per rank, trace.rank<N>.json), with the table beside it (.txt).
//
// Off, the profiler costs one predictable branch per op (bench/profiler_overhead.cpp).
#include <cstdint>
#include <string>
#include <vector>

#include "core/profiler_event.h"
#include "core/profiler_recorder.h"
#include "core/profiler_table.h"
#include "core/profiler_trace.h"

namespace dtrain::profiler {

// Records while it exists, until stop(). Several may overlap (each sees what ran in its own window).
class Profile {
 public:
  Profile();
  ~Profile();
  Profile(const Profile&) = delete;
  Profile& operator=(const Profile&) = delete;

  // Ends the window; later calls do nothing. Every reader below stops the profile first.
  void stop();
  bool stopped() const { return stopped_; }

  const std::vector<Event>& events();  // in start order, times from the profile's start
  const std::vector<Mark>& marks();
  int64_t wall_ns();                    // the profiled window's wall time

  int64_t contiguous_copies();          // copies contiguous() made
  int64_t host_synchronizations();      // times the host waited for a device
  int64_t collective_bytes();           // bytes of the collectives issued

  // Events grouped by name (see core/profiler_table.h).
  std::vector<OpSummary> summary(const TableOptions& options = {});
  std::string table(const TableOptions& options = {});
  // The Chrome trace (core/profiler_trace.h) as text, or written to path (raises naming the path).
  std::string chrome_trace();
  void write_chrome_trace(const std::string& path);

 private:
  int64_t start_ns_ = 0;
  bool stopped_ = false;
  std::vector<Event> events_;
  std::vector<Mark> marks_;
  int64_t wall_ns_ = 0;
};

// A named stretch ("step", "data loading"): one event from construction to destruction.
class Range {
 public:
  explicit Range(const char* name) : scope_(EventKind::Range, name, {}) {}

 private:
  detail::Scope scope_;
};

// The rank and world size traces are tagged with: dist::init sets them; before (or without) it,
// the launcher's environment (OMPI_COMM_WORLD_RANK, PMI_RANK, ...), else rank 0 of 1.
void set_process(int rank, int world_size);
TraceProcess process();

// path with ".rank<N>" before its extension when the world has more than one rank.
std::string rank_tagged_path(const std::string& path, TraceProcess process);

}  // namespace dtrain::profiler
