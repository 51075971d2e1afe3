#include "dist/init.h"

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/profiler.h"
#include "dist/collective_checker.h"
#include "dist/local_backend.h"
#include "dist/node_layout.h"
#include "dist/process_group.h"

#ifdef DTRAIN_WITH_MPI
#include <mpi.h>

#include "dist/communication_thread.h"
#include "dist/hierarchical_all_reduce.h"
#include "dist/mpi_backend.h"
#include "dist/mpi_error.h"
#endif

namespace dtrain::dist {
namespace {

struct DistState {
  bool initialized = false;
  bool finalize_registered = false;
  bool uses_mpi = false;
  bool mpi_started_here = false;  // then finalize() calls MPI_Finalize
  bool mpi_finalized = false;
  int rank = 0;
  int world_size = 1;
  NodeLayout layout;
  std::string hostname;
  const char* all_reduce_algorithm = "flat";
  std::shared_ptr<ProcessGroup> world;
#ifdef DTRAIN_WITH_MPI
  std::shared_ptr<CommunicationThread> thread;
#endif
};

// Never destroyed: finalize() runs from atexit, which may come after static destructors.
DistState& state() {
  static DistState* instance = new DistState();
  return *instance;
}

const DistState& initialized_state(const char* what) {
  const DistState& current = state();
  if (!current.initialized) fail("dist::", what, ": dist::init() has not run (or dist::finalize() has)");
  return current;
}

std::string this_hostname() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "localhost";
  return name;
}

bool debug_collectives_from_environment() {
  const char* value = std::getenv("DTRAIN_DEBUG_COLLECTIVES");
  if (value == nullptr || std::strcmp(value, "") == 0 || std::strcmp(value, "0") == 0) return false;
  if (std::strcmp(value, "1") == 0) return true;
  fail("DTRAIN_DEBUG_COLLECTIVES: expected 0 or 1, got '", value, "'");
}

// DTRAIN_HIERARCHICAL_ALLREDUCE, as read on this rank (Invalid: any other value).
enum class HierarchicalChoice : int { Invalid = -1, Never = 0, Always = 1, Auto = 2 };

const char* hierarchical_setting() {
  const char* value = std::getenv("DTRAIN_HIERARCHICAL_ALLREDUCE");
  return value == nullptr ? "" : value;
}

HierarchicalChoice hierarchical_choice_from_environment() {
  const char* value = hierarchical_setting();
  if (std::strcmp(value, "") == 0 || std::strcmp(value, "auto") == 0) return HierarchicalChoice::Auto;
  if (std::strcmp(value, "0") == 0) return HierarchicalChoice::Never;
  if (std::strcmp(value, "1") == 0) return HierarchicalChoice::Always;
  return HierarchicalChoice::Invalid;
}

[[noreturn]] void fail_invalid_hierarchical_choice() {
  fail("DTRAIN_HIERARCHICAL_ALLREDUCE: expected auto, 1 or 0, got '", hierarchical_setting(), "'");
}

// Every device type of a world of one: identity collectives, no MPI, no NCCL.
void add_local_backends(ProcessGroup& group) {
  for (int type = 0; type < kDeviceTypeCount; ++type) {
    if (!group.has_backend(static_cast<DeviceType>(type))) {
      group.set_backend(static_cast<DeviceType>(type), std::make_unique<LocalBackend>());
    }
  }
}

void start_world_of_one(DistState& current) {
  if (hierarchical_choice_from_environment() == HierarchicalChoice::Invalid) fail_invalid_hierarchical_choice();
  current.rank = 0;
  current.world_size = 1;
  current.all_reduce_algorithm = "flat";
  current.hostname = this_hostname();
  current.layout = node_layout({current.hostname}, 0);
  current.world = std::make_shared<ProcessGroup>(std::vector<int>{0}, 0);
  add_local_backends(*current.world);
}

#ifdef DTRAIN_WITH_MPI

std::chrono::milliseconds collective_timeout_from_environment() {
  const char* value = std::getenv("DTRAIN_COLLECTIVE_TIMEOUT");
  if (value == nullptr || *value == '\0') return std::chrono::minutes(10);
  char* end = nullptr;
  double seconds = std::strtod(value, &end);
  if (end == value || *end != '\0' || !(seconds >= 0)) {
    fail("DTRAIN_COLLECTIVE_TIMEOUT: expected a number of seconds (0 for no timeout), got '", value, "'");
  }
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

// Set by mpirun (Open MPI), by PMIx launchers and by PMI-1/2 launchers (MPICH's hydra, srun).
bool started_by_mpi_launcher() {
  for (const char* variable : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"}) {
    if (std::getenv(variable) != nullptr) return true;
  }
  return false;
}

const char* thread_level_name(int level) {
  switch (level) {
    case MPI_THREAD_SINGLE: return "MPI_THREAD_SINGLE";
    case MPI_THREAD_FUNNELED: return "MPI_THREAD_FUNNELED";
    case MPI_THREAD_SERIALIZED: return "MPI_THREAD_SERIALIZED";
    case MPI_THREAD_MULTIPLE: return "MPI_THREAD_MULTIPLE";
  }
  return "an unknown thread level";
}

std::vector<std::string> gather_hostnames(int world_size) {
  char mine[MPI_MAX_PROCESSOR_NAME] = {};
  int length = 0;
  check_mpi(MPI_Get_processor_name(mine, &length), "MPI_Get_processor_name");
  std::vector<char> all(static_cast<size_t>(world_size) * MPI_MAX_PROCESSOR_NAME);
  check_mpi(MPI_Allgather(mine, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, all.data(), MPI_MAX_PROCESSOR_NAME, MPI_CHAR,
                          MPI_COMM_WORLD),
            "MPI_Allgather");
  std::vector<std::string> hostnames;
  for (int rank = 0; rank < world_size; ++rank) {
    const char* name = all.data() + static_cast<size_t>(rank) * MPI_MAX_PROCESSOR_NAME;
    hostnames.emplace_back(name, strnlen(name, MPI_MAX_PROCESSOR_NAME));
  }
  return hostnames;
}

// Auto: when it can help — the ranks span several hosts and some host has more than one (with one
// rank per host it would be the flat all-reduce with extra steps).
bool use_hierarchical_all_reduce(HierarchicalChoice choice, const NodeLayout& layout, int world_size) {
  switch (choice) {
    case HierarchicalChoice::Never:
    case HierarchicalChoice::Invalid: return false;
    case HierarchicalChoice::Always: return world_size > 1;
    case HierarchicalChoice::Auto: return layout.node_count > 1 && layout.node_count < world_size;
  }
  return false;
}

// The choice every rank read, agreed on: a rank whose value is bad or differs from the others'
// would build a different backend, and the ranks would then issue different collectives and hang.
// One MPI_Allreduce (at init, on MPI_COMM_WORLD) lets every rank raise the same named error.
HierarchicalChoice agreed_hierarchical_choice() {
  const HierarchicalChoice mine = hierarchical_choice_from_environment();
  int extremes[2] = {static_cast<int>(mine), -static_cast<int>(mine)};  // max and -min over ranks
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, extremes, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
  const int highest = extremes[0];
  const int lowest = -extremes[1];
  if (mine == HierarchicalChoice::Invalid) fail_invalid_hierarchical_choice();
  if (lowest == static_cast<int>(HierarchicalChoice::Invalid)) {
    fail("DTRAIN_HIERARCHICAL_ALLREDUCE: another rank's value is not auto, 1 or 0 (this rank's is valid)");
  }
  if (lowest != highest) {
    fail("DTRAIN_HIERARCHICAL_ALLREDUCE: expected the same value on every rank, got different ones (this rank's: '",
         hierarchical_setting(), "')");
  }
  return mine;
}

void start_mpi_world(DistState& current, int* argc, char*** argv) {
  if (current.mpi_finalized) fail("dist::init: MPI was finalised by dist::finalize() and cannot start again in this process");
  int already_initialized = 0;
  check_mpi(MPI_Initialized(&already_initialized), "MPI_Initialized");
  int provided = MPI_THREAD_SINGLE;
  if (already_initialized) {
    check_mpi(MPI_Query_thread(&provided), "MPI_Query_thread");
  } else {
    // Only dtrain's communication thread calls MPI after init, never two threads at once.
    check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
    current.mpi_started_here = true;
  }
  current.uses_mpi = true;
  if (provided < MPI_THREAD_SERIALIZED) {
    fail("dist::init: dtrain calls MPI from its communication thread and needs thread level MPI_THREAD_SERIALIZED; "
         "requested MPI_THREAD_SERIALIZED, the MPI library provided ", thread_level_name(provided),
         already_initialized ? " (MPI was initialised before dist::init: use MPI_Init_thread)" : "");
  }
  check_mpi(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  check_mpi(MPI_Comm_rank(MPI_COMM_WORLD, &current.rank), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(MPI_COMM_WORLD, &current.world_size), "MPI_Comm_size");
  set_error_context(detail::concat("rank ", current.rank));
  profiler::set_process(current.rank, current.world_size);  // traces name their rank

  std::vector<std::string> hostnames = gather_hostnames(current.world_size);
  current.hostname = hostnames[current.rank];
  current.layout = node_layout(hostnames, current.rank);
  const HierarchicalChoice hierarchical_choice = agreed_hierarchical_choice();

  // dtrain's traffic on its own communicator, apart from any the program sends on MPI_COMM_WORLD.
  MPI_Comm world_communicator = MPI_COMM_NULL;
  check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &world_communicator), "MPI_Comm_dup");

  const int rank = current.rank;
  current.thread = std::make_shared<CommunicationThread>(
      collective_timeout_from_environment(), [rank](const std::string& message) {
        std::fprintf(stderr, "dtrain [rank %d]: %s\n", rank, message.c_str());
        std::fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, 1);
      });
  std::vector<int> ranks(current.world_size);
  for (int r = 0; r < current.world_size; ++r) ranks[r] = r;
  current.world = std::make_shared<ProcessGroup>(std::move(ranks), current.rank);
  auto flat = std::make_unique<MpiBackend>(world_communicator, current.world_size, current.rank, current.thread);
  if (use_hierarchical_all_reduce(hierarchical_choice, current.layout, current.world_size)) {
    current.world->set_backend(DeviceType::CPU,
                               std::make_unique<HierarchicalAllReduce>(std::move(flat), current.layout.node_index));
    current.all_reduce_algorithm = "hierarchical";
  } else {
    current.world->set_backend(DeviceType::CPU, std::move(flat));
    current.all_reduce_algorithm = "flat";
  }
  if (current.world_size == 1) add_local_backends(*current.world);
}

#endif  // DTRAIN_WITH_MPI

void finalize_at_exit() {
  try {
    finalize();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "%s\n", error.what());
  }
}

}  // namespace

void init(int* argc, char*** argv) {
  DistState& current = state();
  if (current.initialized) return;
  set_collective_checks(debug_collectives_from_environment());
#ifdef DTRAIN_WITH_MPI
  int program_initialized_mpi = 0;
  check_mpi(MPI_Initialized(&program_initialized_mpi), "MPI_Initialized");
  if (started_by_mpi_launcher() || program_initialized_mpi) start_mpi_world(current, argc, argv);
  else start_world_of_one(current);
#else
  start_world_of_one(current);
#endif
  current.initialized = true;
  if (!current.finalize_registered) {
    std::atexit(finalize_at_exit);
    current.finalize_registered = true;
  }
}

void finalize() {
  DistState& current = state();
  if (!current.initialized) return;
  current.initialized = false;
  // The groups still held elsewhere stay valid objects; their collectives raise from now on.
  current.world.reset();
#ifdef DTRAIN_WITH_MPI
  if (current.thread) {
    current.thread->stop();  // runs what is queued first
    current.thread.reset();
  }
  if (current.mpi_started_here) {
    int already_finalized = 0;
    check_mpi(MPI_Finalized(&already_finalized), "MPI_Finalized");
    current.mpi_started_here = false;
    current.mpi_finalized = true;
    if (!already_finalized) check_mpi(MPI_Finalize(), "MPI_Finalize");
  }
#endif
}

bool is_initialized() { return state().initialized; }
bool uses_mpi() { return initialized_state("uses_mpi").uses_mpi; }

int rank() { return initialized_state("rank").rank; }
int world_size() { return initialized_state("world_size").world_size; }
int local_rank() { return initialized_state("local_rank").layout.local_rank; }
int local_size() { return initialized_state("local_size").layout.local_size; }
int node_index() { return initialized_state("node_index").layout.node_index; }
int node_count() { return initialized_state("node_count").layout.node_count; }
const std::string& hostname() { return initialized_state("hostname").hostname; }
const char* all_reduce_algorithm() { return initialized_state("all_reduce_algorithm").all_reduce_algorithm; }

ProcessGroup& world() { return *world_ptr(); }
std::shared_ptr<ProcessGroup> world_ptr() { return initialized_state("world").world; }

void abort_job(int exit_code) {
  std::fflush(stdout);
  std::fflush(stderr);
#ifdef DTRAIN_WITH_MPI
  int mpi_initialized = 0;
  int mpi_finalized = 0;
  MPI_Initialized(&mpi_initialized);
  MPI_Finalized(&mpi_finalized);
  if (mpi_initialized && !mpi_finalized) MPI_Abort(MPI_COMM_WORLD, exit_code);
#endif
  std::_Exit(exit_code);
}

}  // namespace dtrain::dist
