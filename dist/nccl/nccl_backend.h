#pragma once
// NcclBackend: the collectives of one group on CUDA tensors, through one NCCL communicator bound
// to one device (one rank per GPU), in libdtrain_nccl.so.
//
// Streams, as PyTorch's ProcessGroupNCCL:
//   issue   the backend records an event on the issuing thread's current stream for the device
//           (the compute stream) and its own communication stream waits for it, so the collective
//           reads its inputs only after the kernels queued before it have written them; then the
//           NCCL call is queued on the communication stream and a completion event recorded.
//   wait()  makes the waiting thread's current stream wait for the completion event (the host
//           does not block): kernels queued afterwards see the result; a copy to the host waits.
//   memory  the Work holds the tensors (and any temporary) until it is destroyed; if it was never
//           waited for, its destructor makes the issuing stream wait for the completion, so the
//           caching allocator reuses their memory on that stream only after NCCL is done with it.
//   timeout every collective is watched by the communicator's watchdog (dist/collective_watchdog.h):
//           one still pending DTRAIN_NCCL_TIMEOUT_SECONDS after it was issued (a peer died or
//           issued another collective) makes the watchdog's thread call ncclCommAbort, which ends
//           the collective's kernels so no stream or host waits forever; from then on every
//           collective, wait(), is_completed() and check on the group raises, naming it.
// bfloat16 and float16 are reduced by NCCL in their own type (each partial sum rounded), bool as
// bytes whose sum and max are a maximum (logical or, as the MPI backend).
#include <cuda_runtime.h>
#include <nccl.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dist/collective_watchdog.h"
#include "dist/nccl_library.h"
#include "dist/process_group.h"

namespace dtrain::dist::nccl {

// The communicator, its stream, the event the stream waits on and the watchdog; shared with the
// Works, so a Work that outlives its backend still checks errors on a live communicator.
struct Communicator {
  Communicator(const detail::NcclUniqueId& id, const detail::NcclBackendOptions& options);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  // Before the issuing thread touches comm: raises the watchdog's failure, if any; else returns
  // a lock that keeps the watchdog from aborting (and freeing) comm while it is used.
  std::unique_lock<std::timed_mutex> use(const std::string& during);
  // Raises the watchdog's failure, or when NCCL reports an asynchronous error (a peer failed, a
  // network error) on comm.
  void check_async_error(const std::string& during);
  // On the watchdog's thread, when a collective timed out: ncclCommAbort (as PyTorch does).
  void abort();

  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;  // non-blocking: it never waits on the legacy default stream implicitly
  cudaEvent_t inputs_ready = nullptr;
  int device = 0;
  int size = 1;
  int rank = 0;
  // Held around the issuing thread's NCCL calls and around the abort: comm is freed by the abort.
  std::timed_mutex comm_mutex;
  std::atomic<bool> aborted{false};  // then comm is gone: never ncclCommDestroy it
  // Its thread calls abort() on this object: ~Communicator joins it before anything else goes.
  std::unique_ptr<CollectiveWatchdog> watchdog;
};

class NcclBackend : public CommunicationBackend {
 public:
  NcclBackend(const detail::NcclUniqueId& id, detail::NcclBackendOptions options);

  const char* name() const override { return "nccl"; }
  WorkHandle all_reduce(Tensor& tensor, ReduceOp op) override;
  WorkHandle broadcast(Tensor& tensor, int root) override;
  WorkHandle all_gather(const Tensor& input, Tensor& output) override;
  WorkHandle reduce_scatter(const Tensor& input, Tensor& output, ReduceOp op) override;
  WorkHandle barrier() override;
  // A sub-group chooses its own CUDA backend at its first CUDA collective (a new unique id).
  std::unique_ptr<CommunicationBackend> split(int color, int key) override { return nullptr; }

 private:
  // Checks tensor's device, orders the communication stream after the compute stream (with the
  // test delays), queues enqueue(stream) and returns the Work holding keep_alive.
  template <typename Enqueue>
  WorkHandle launch(const char* collective, const Tensor& tensor, std::vector<Tensor> keep_alive, bool delayed,
                    Enqueue enqueue);

  std::shared_ptr<Communicator> communicator_;
  int64_t injected_delay_microseconds_ = 0;
};

}  // namespace dtrain::dist::nccl
