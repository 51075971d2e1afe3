#pragma once
// Which backend carries a group's CUDA tensors, chosen at the group's first CUDA collective (every
// rank issues the same one, so the choice is made collectively):
//   - NCCL (dist/nccl/, libdtrain_nccl.so, loaded then) when every rank of the group has its own
//     GPU and can load the library; the NCCL unique id travels over the group's CPU backend (MPI)
//   - otherwise the staged path (dist/staged_backend.h): copy to the host, MPI, copy back — what
//     several ranks on one GPU need (NCCL refuses them), e.g. testing on one GPU
// Every rank gathers every rank's facts (node, device, whether NCCL loads) first, so all of them
// make the same choice, and raise together when the choice is impossible.
// A world of one uses neither: its groups carry CUDA tensors with device copies (LocalBackend).
//
// Environment:
//   DTRAIN_CUDA_COMMUNICATION=auto|nccl|staged   force a backend; default auto. nccl raises (on
//                                                every rank) when NCCL cannot be used.
//   DTRAIN_NCCL_TIMEOUT_SECONDS=S                an NCCL collective still pending S seconds after it
//                                                was issued aborts its group's communicator (the
//                                                group's watchdog, dist/collective_watchdog.h): every
//                                                later use of the group raises, naming it; default
//                                                600, S > 0 (fractions allowed)
//   DTRAIN_TEST_INJECT_DELAYS_US=N               test only: spin N microseconds on the GPU before
//                                                each NCCL all-gather and reduce-scatter (on the
//                                                compute and the communication stream) and after
//                                                each DDP/ZeRO forward, so that a missing stream
//                                                dependency changes results; default 0
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "dist/process_group.h"

namespace dtrain::dist {

enum class CudaCommunication { Auto, Nccl, Staged };
// DTRAIN_CUDA_COMMUNICATION; raises on a value other than auto, nccl and staged.
CudaCommunication cuda_communication_from_environment();

// One rank's facts for the choice.
struct RankPlacement {
  int64_t node = 0;           // dist::node_index()
  int64_t device = 0;         // the CUDA device index of the tensors
  bool nccl_loadable = false;
};

struct CudaCommunicationChoice {
  bool use_nccl = false;
  std::string reason;  // why not NCCL (empty when NCCL is used)
};

// The choice from every rank's facts (by group rank). Raises when nccl is requested and the
// facts rule it out, naming why. Pure: the same facts give the same answer on every rank.
CudaCommunicationChoice choose_cuda_communication(const std::vector<RankPlacement>& ranks, CudaCommunication requested);

// Collective over group (through its CPU backend): gathers the facts, chooses, and returns the
// NCCL or staged backend for tensors on device.
std::unique_ptr<CommunicationBackend> create_cuda_backend(ProcessGroup& group, Device device);

// Collective over group: an NCCL backend for tensors on device, its unique id made on group rank 0
// and broadcast over the group's CPU backend. Raises on every rank when rank 0 cannot make one.
std::unique_ptr<CommunicationBackend> create_nccl_backend(ProcessGroup& group, Device device);

// Whether libdtrain_nccl.so loads here (never raises); reason gets why not.
bool nccl_available(std::string* reason = nullptr);

// DTRAIN_NCCL_TIMEOUT_SECONDS, read at each new NCCL backend; 600 when unset or empty. Raises,
// naming the variable and the value, on anything but a finite number of seconds > 0.
double nccl_timeout_seconds_from_environment();

// DTRAIN_TEST_INJECT_DELAYS_US, read once; 0 when unset.
int64_t injected_delay_microseconds();
// After a DDP/ZeRO forward: with injected delays on, spins on output's device stream (CUDA only,
// when the NCCL library is loaded); otherwise nothing.
void inject_delay_after_forward(const Tensor& output);

}  // namespace dtrain::dist
