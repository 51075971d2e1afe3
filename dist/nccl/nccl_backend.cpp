#include "dist/nccl/nccl_backend.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "core/allocator.h"
#include "core/cuda_device.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/ops/factory.h"
#include "dist/nccl/delay_kernel.h"
#include "dist/nccl/nccl_check.h"

namespace dtrain::dist::nccl {
namespace {

static_assert(sizeof(ncclUniqueId) == sizeof(detail::NcclUniqueId), "NCCL_UNIQUE_ID_BYTES changed");

// Makes index the current device for the guard's life. The destructor cannot raise: a failure to
// switch back is ignored (the next checked call names any real problem).
class DeviceGuard {
 public:
  explicit DeviceGuard(int index) {
    DTRAIN_NCCL_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != index) DTRAIN_NCCL_CUDA_CHECK(cudaSetDevice(index));
  }
  ~DeviceGuard() {
    int current = previous_;
    if (cudaGetDevice(&current) == cudaSuccess && current != previous_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

cudaStream_t compute_stream(int device) {
  return static_cast<cudaStream_t>(cuda::current_stream(Device::cuda(device)));
}

ncclDataType_t nccl_datatype(DType dtype) {
  switch (dtype) {
    case DType::Float32: return ncclFloat32;
    case DType::Float64: return ncclFloat64;
    case DType::BFloat16: return ncclBfloat16;
    case DType::Float16: return ncclFloat16;
    case DType::Int32: return ncclInt32;
    case DType::Int64: return ncclInt64;
    case DType::Bool: return ncclUint8;
  }
  fail("NCCL backend: no NCCL datatype for dtype ", dtype);
}

ncclRedOp_t nccl_op(ReduceOp op, DType dtype) {
  if (dtype == DType::Bool) return ncclMax;  // or of 0/1 bytes, for sum and max alike
  switch (op) {
    case ReduceOp::Sum: return ncclSum;
    case ReduceOp::Average: return ncclAvg;  // the group admits floating dtypes only
    case ReduceOp::Max: return ncclMax;
  }
  fail("NCCL backend: unknown reduce op ", static_cast<int>(op));
}

bool overlaps(const Tensor& a, const Tensor& b) {
  auto* a_begin = static_cast<const char*>(a.data());
  auto* b_begin = static_cast<const char*>(b.data());
  return a_begin < b_begin + b.nbytes() && b_begin < a_begin + a.nbytes();
}

// A collective's completion event, shared by its Work and its watchdog entry: destroyed when the
// last of them lets go, so the watchdog never polls a destroyed event.
class CompletionEvent {
 public:
  CompletionEvent(int device, cudaStream_t stream) : device_(device) {
    DTRAIN_NCCL_CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming));
    const cudaError_t recorded = cudaEventRecord(event_, stream);
    if (recorded != cudaSuccess) cudaEventDestroy(event_);
    check_cuda(recorded, "cudaEventRecord(done, communication stream)", __FILE__, __LINE__);
  }
  ~CompletionEvent() {
    // On any thread (the watchdog's drops its entries there), with the event's device current.
    // A destructor cannot raise: failures (a CUDA runtime shutting down at exit) are ignored.
    int previous = 0;
    const bool switched = cudaGetDevice(&previous) == cudaSuccess && cudaSetDevice(device_) == cudaSuccess;
    cudaEventDestroy(event_);
    if (switched) cudaSetDevice(previous);
  }
  CompletionEvent(const CompletionEvent&) = delete;
  CompletionEvent& operator=(const CompletionEvent&) = delete;

  cudaEvent_t get() const { return event_; }

 private:
  int device_;
  cudaEvent_t event_ = nullptr;
};

// The Work of one NCCL collective: a completion event on the communication stream, watched by the
// communicator's watchdog.
class NcclWork final : public Work {
 public:
  NcclWork(std::shared_ptr<Communicator> communicator, cudaStream_t issuing_stream, std::vector<Tensor> keep_alive,
           std::string description)
      : communicator_(std::move(communicator)),
        issuing_stream_(issuing_stream),
        keep_alive_(std::move(keep_alive)),
        description_(std::move(description)),
        done_(std::make_shared<CompletionEvent>(communicator_->device, communicator_->stream)) {
    // Polled on the watchdog's thread, which needs the event's device current there. A failing
    // query counts as completed: the issuing thread's next call on the group reports the error.
    communicator_->watchdog->watch(description_, [done = done_, device = communicator_->device] {
      if (cudaSetDevice(device) != cudaSuccess) return true;
      return cudaEventQuery(done->get()) != cudaErrorNotReady;
    });
  }

  ~NcclWork() override {
    // A destructor cannot raise: failures here (a CUDA runtime shutting down at exit) are ignored.
    int previous = 0;
    bool switched = cudaGetDevice(&previous) == cudaSuccess && cudaSetDevice(communicator_->device) == cudaSuccess;
    if (!waited_) cudaStreamWaitEvent(issuing_stream_, done_->get(), 0);
    if (switched) cudaSetDevice(previous);
  }

  bool is_completed() override {
    DeviceGuard guard(communicator_->device);
    const cudaError_t status = cudaEventQuery(done_->get());
    // After the query: an aborted collective's event completes too, and must raise, not count as done.
    communicator_->watchdog->check();
    if (status == cudaErrorNotReady) {
      communicator_->check_async_error(description_);
      return false;
    }
    check_cuda(status, "cudaEventQuery(done_) (the collective's completion event)", __FILE__, __LINE__);
    return true;
  }

  void wait() override {
    DeviceGuard guard(communicator_->device);
    DTRAIN_NCCL_CUDA_CHECK(cudaStreamWaitEvent(compute_stream(communicator_->device), done_->get(), 0));
    waited_ = true;
    communicator_->check_async_error(description_);
  }

 private:
  std::shared_ptr<Communicator> communicator_;
  cudaStream_t issuing_stream_;
  std::vector<Tensor> keep_alive_;
  std::string description_;
  std::shared_ptr<CompletionEvent> done_;
  bool waited_ = false;
};

CollectiveWatchdog::Options watchdog_options(const detail::NcclBackendOptions& options) {
  if (!(options.timeout_seconds > 0)) {
    fail("NCCL backend: expected a timeout > 0 seconds (DTRAIN_NCCL_TIMEOUT_SECONDS), got ", options.timeout_seconds);
  }
  CollectiveWatchdog::Options watch;
  // Whole milliseconds, at least one; capped (about 30 years) so that the conversion cannot overflow.
  const double milliseconds = std::ceil(std::min(options.timeout_seconds, 1e9) * 1000.0);
  watch.timeout = std::chrono::milliseconds(static_cast<int64_t>(milliseconds));
  watch.poll_interval = std::chrono::milliseconds(100);
  watch.rank = options.rank;
  watch.timeout_setting = "DTRAIN_NCCL_TIMEOUT_SECONDS";
  return watch;
}

}  // namespace

Communicator::Communicator(const detail::NcclUniqueId& id, const detail::NcclBackendOptions& options)
    : device(options.device), size(options.size), rank(options.rank) {
  if (size < 1 || rank < 0 || rank >= size) fail("NCCL backend: expected a rank in [0, ", size, "), got ", rank);
  // Before the communicator: its thread idles until a collective is watched, and a throwing
  // constructor then leaves no communicator behind.
  watchdog = std::make_unique<CollectiveWatchdog>(watchdog_options(options),
                                                  [this](const std::string&, CollectiveWatchdog::Clock::duration) { abort(); });
  DeviceGuard guard(device);
  DTRAIN_NCCL_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  DTRAIN_NCCL_CUDA_CHECK(cudaEventCreateWithFlags(&inputs_ready, cudaEventDisableTiming));
  ncclUniqueId nccl_id;
  std::memcpy(&nccl_id, id.bytes.data(), sizeof(nccl_id));
  DTRAIN_NCCL_CHECK(ncclCommInitRank(&comm, size, nccl_id, rank));
}

Communicator::~Communicator() {
  // Finishes what is queued before the communicator goes, with the watchdog still watching: a
  // collective that never completes is aborted after the timeout, which ends this wait instead of
  // hanging in it. At process exit the CUDA runtime may be gone already: then the communicator is
  // left to the operating system.
  int previous = 0;
  bool switched = cudaGetDevice(&previous) == cudaSuccess && cudaSetDevice(device) == cudaSuccess;
  const bool drained = cudaStreamSynchronize(stream) == cudaSuccess;
  watchdog.reset();  // joins its thread: nothing aborts comm behind this destructor's back now
  if (drained) {
    if (comm != nullptr && !aborted) ncclCommDestroy(comm);  // ncclCommAbort freed an aborted one
    cudaEventDestroy(inputs_ready);
    cudaStreamDestroy(stream);
  }
  if (switched) cudaSetDevice(previous);
}

std::unique_lock<std::timed_mutex> Communicator::use(const std::string& during) {
  std::unique_lock lock(comm_mutex);
  watchdog->check();
  // The watchdog records its failure before it aborts, so this only guards against a change there.
  if (aborted) fail("NCCL ", during, ": the communicator was aborted");
  return lock;
}

void Communicator::check_async_error(const std::string& during) {
  std::unique_lock lock = use(during);
  ncclResult_t state = ncclSuccess;
  DTRAIN_NCCL_CHECK(ncclCommGetAsyncError(comm, &state));
  if (state != ncclSuccess && state != ncclInProgress) {
    fail("NCCL reported an asynchronous error during ", during, ": ", ncclGetErrorString(state), " (",
         ncclGetLastError(comm), ")");
  }
}

void Communicator::abort() {
  // An issuing thread holds the lock for microseconds, unless it is stuck inside NCCL waiting for
  // a peer that is gone — what the abort must end: so wait a little, then abort without the lock.
  std::unique_lock lock(comm_mutex, std::defer_lock);
  (void)lock.try_lock_for(std::chrono::seconds(5));
  if (aborted.exchange(true)) return;
  DTRAIN_NCCL_CUDA_CHECK(cudaSetDevice(device));  // the watchdog's thread: this communicator's device
  DTRAIN_NCCL_CHECK(ncclCommAbort(comm));
}

NcclBackend::NcclBackend(const detail::NcclUniqueId& id, detail::NcclBackendOptions options)
    : communicator_(std::make_shared<Communicator>(id, options)),
      injected_delay_microseconds_(options.injected_delay_microseconds) {}

template <typename Enqueue>
WorkHandle NcclBackend::launch(const char* collective, const Tensor& tensor, std::vector<Tensor> keep_alive,
                               bool delayed, Enqueue enqueue) {
  Communicator& communicator = *communicator_;
  if (!tensor.device().is_cuda() || tensor.device().index != communicator.device) {
    fail("NCCL ", collective, ": this group's NCCL communicator is on cuda:", communicator.device, ", got a tensor on ",
         tensor.device(), " (one device per rank: the group's first CUDA collective fixed it)");
  }
  std::string description = dtrain::detail::concat("NCCL ", collective, "(", dtype_name(tensor.dtype()), ", ",
                                                   tensor.numel(), " elements) over ", communicator.size, " ranks");
  // Raises once the watchdog has aborted the communicator; keeps it from aborting until issued.
  std::unique_lock in_use = communicator.use(description);
  DeviceGuard guard(communicator.device);
  cudaStream_t compute = compute_stream(communicator.device);
  const int64_t delay = delayed ? injected_delay_microseconds_ : 0;
  spin_on_stream(compute, delay);  // test only: as if the kernels producing the inputs were slow
  DTRAIN_NCCL_CUDA_CHECK(cudaEventRecord(communicator.inputs_ready, compute));
  DTRAIN_NCCL_CUDA_CHECK(cudaStreamWaitEvent(communicator.stream, communicator.inputs_ready, 0));
  spin_on_stream(communicator.stream, delay);  // test only: as if the collective were slow
  enqueue(communicator.stream);
  return std::make_shared<NcclWork>(communicator_, compute, std::move(keep_alive), std::move(description));
}

WorkHandle NcclBackend::all_reduce(Tensor& tensor, ReduceOp op) {
  ncclComm_t comm = communicator_->comm;
  return launch("all_reduce", tensor, {tensor}, false, [&](cudaStream_t stream) {
    void* data = tensor.data();
    DTRAIN_NCCL_CHECK(ncclAllReduce(data, data, static_cast<size_t>(tensor.numel()), nccl_datatype(tensor.dtype()),
                                    nccl_op(op, tensor.dtype()), comm, stream));
  });
}

WorkHandle NcclBackend::broadcast(Tensor& tensor, int root) {
  ncclComm_t comm = communicator_->comm;
  return launch("broadcast", tensor, {tensor}, false, [&](cudaStream_t stream) {
    void* data = tensor.data();
    DTRAIN_NCCL_CHECK(ncclBroadcast(data, data, static_cast<size_t>(tensor.numel()), nccl_datatype(tensor.dtype()), root,
                                    comm, stream));
  });
}

WorkHandle NcclBackend::all_gather(const Tensor& input, Tensor& output) {
  ncclComm_t comm = communicator_->comm;
  const char* my_slot = static_cast<const char*>(output.data()) + communicator_->rank * input.nbytes();
  // Input in this rank's slot of output is NCCL's in-place form; any other overlap would have NCCL
  // read bytes it overwrites, so such an input travels as a copy (made on the compute stream,
  // before the event the collective waits for).
  Tensor source = input;
  if (input.data() != my_slot && overlaps(input, output)) {
    NoGradGuard no_grad;
    MemoryTagScope communication(MemoryTag::Communication);
    source = input.clone();
  }
  return launch("all_gather", input, {source, output}, true, [&](cudaStream_t stream) {
    DTRAIN_NCCL_CHECK(ncclAllGather(source.data(), output.data(), static_cast<size_t>(input.numel()),
                                    nccl_datatype(input.dtype()), comm, stream));
  });
}

WorkHandle NcclBackend::reduce_scatter(const Tensor& input, Tensor& output, ReduceOp op) {
  ncclComm_t comm = communicator_->comm;
  const char* my_slot = static_cast<const char*>(input.data()) + communicator_->rank * output.nbytes();
  // Output in this rank's slot of input is NCCL's in-place form; any other overlap receives into
  // a separate buffer, copied into output on the communication stream.
  Tensor receive = output;
  if (output.data() != my_slot && overlaps(input, output)) {
    MemoryTagScope communication(MemoryTag::Communication);
    receive = empty(output.shape(), {.dtype = output.dtype(), .device = output.device()});
  }
  return launch("reduce_scatter", input, {input, output, receive}, true, [&](cudaStream_t stream) {
    DTRAIN_NCCL_CHECK(ncclReduceScatter(input.data(), receive.data(), static_cast<size_t>(output.numel()),
                                        nccl_datatype(input.dtype()), nccl_op(op, input.dtype()), comm, stream));
    if (receive.data() != output.data()) {
      DTRAIN_NCCL_CUDA_CHECK(
          cudaMemcpyAsync(output.data(), receive.data(), output.nbytes(), cudaMemcpyDeviceToDevice, stream));
    }
  });
}

WorkHandle NcclBackend::barrier() {
  // NCCL has no barrier: an all-reduce of one int on this group's device, then the host waits.
  Tensor token;
  {
    MemoryTagScope communication(MemoryTag::Communication);
    token = zeros({1}, {.dtype = kInt32, .device = Device::cuda(communicator_->device)});
  }
  WorkHandle work = all_reduce(token, ReduceOp::Sum);
  work->wait();
  DeviceGuard guard(communicator_->device);
  DTRAIN_NCCL_CUDA_CHECK(cudaStreamSynchronize(communicator_->stream));
  communicator_->check_async_error("NCCL barrier");  // the wait may have ended by the watchdog's abort
  return work;
}

}  // namespace dtrain::dist::nccl
