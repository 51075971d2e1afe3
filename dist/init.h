#pragma once
// Bootstrap: MPI starts and wires the ranks. A process started without mpirun, or a build
// without MPI (DTRAIN_MPI=OFF), is a world of one and needs nothing else.
//
// Environment (read by init, the same on every rank):
//   DTRAIN_DEBUG_COLLECTIVES=1   check before each collective that every rank issues the same
//                                one (dist/collective_checker.h); default 0
//   DTRAIN_COLLECTIVE_TIMEOUT=S  end the job (MPI_Abort) when one collective has not completed
//                                after S seconds, instead of hanging; default 600, 0 = never
//   DTRAIN_HIERARCHICAL_ALLREDUCE=auto|1|0
//                                the world's all_reduce of CPU tensors reduces inside each host,
//                                all-reduces among one rank per host and broadcasts inside the host
//                                (dist/hierarchical_all_reduce.h): auto (the default) when the
//                                ranks span several hosts and some host has more than one; 1 at
//                                any world size above one (on one host: a reduce and a broadcast);
//                                0 never. CUDA tensors keep NCCL's own topology handling.
#include <memory>
#include <string>

namespace dtrain::dist {

class ProcessGroup;

// Initialises MPI (with the thread level the communication thread needs, checked), finds
// rank, world size and the ranks on this node (by hostname), creates the world group and sets
// the error context to "rank N" so every dtrain::Error names the rank that raised it.
// Idempotent. argc/argv may be null.
//
// MPI starts only when a launcher started the process (mpirun/Open MPI, or a PMI/PMIx launcher
// such as srun: their environment variables say so) or when the program initialised MPI itself.
// A process started directly is a world of one without MPI: Open MPI's singleton start would
// spawn a daemon (about half a second) for a world that has nothing to talk to.
void init(int* argc = nullptr, char*** argv = nullptr);
// Waits for pending work and finalises MPI. Called at exit if the program does not. MPI cannot
// start again in the same process afterwards.
void finalize();
bool is_initialized();
// Whether this world talks through MPI (false for a world of one started without mpirun).
bool uses_mpi();

int rank();        // in the world
int world_size();
int local_rank();  // among the ranks on this node
int local_size();
int node_index();  // this node among the job's nodes, 0 .. node_count() - 1 (in order of their lowest rank)
int node_count();
const std::string& hostname();

// How the world group all-reduces CPU tensors: "hierarchical" (dist/hierarchical_all_reduce.h) or
// "flat" (one MPI_Allreduce over every rank; also a world of one). For tests and start-up lines.
const char* all_reduce_algorithm();

// The group of all ranks (init() must have run).
ProcessGroup& world();
std::shared_ptr<ProcessGroup> world_ptr();

// Ends every rank of the job now (MPI_Abort), for a failure after which the ranks can no longer
// agree on what to do next; a world of one just exits. Flushes stdout and stderr first.
[[noreturn]] void abort_job(int exit_code = 1);

}  // namespace dtrain::dist
