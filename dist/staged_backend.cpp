#include "dist/staged_backend.h"

#include <functional>
#include <utility>

#include "core/allocator.h"
#include "core/backend.h"
#include "core/grad_mode.h"
#include "core/ops/factory.h"

namespace dtrain::dist {
namespace {

// A new host tensor with tensor's bytes; for a CUDA tensor the copy waits for the kernels queued
// before it on this thread's stream.
Tensor copy_to_host(const Tensor& tensor) {
  NoGradGuard no_grad;
  MemoryTagScope communication(MemoryTag::Communication);
  Tensor host = empty(tensor.shape(), {.dtype = tensor.dtype()});
  if (tensor.device().is_cpu()) {
    dtrain::backend_for(tensor.device()).copy(tensor, host);
  } else {
    dtrain::backend_for(tensor.device()).copy_to_host(tensor, host);
  }
  return host;
}

// host's bytes into destination (through the kernel table: the version counter stays, as for any
// collective's output).
void copy_from_host(const Tensor& host, const Tensor& destination) {
  NoGradGuard no_grad;
  Tensor target = destination;
  if (destination.device().is_cpu()) {
    dtrain::backend_for(destination.device()).copy(host, target);
  } else {
    dtrain::backend_for(destination.device()).copy_from_host(host, target);
  }
}

// The host collective's Work, and the copy back that follows it, once, on the waiting thread.
class StagedWork final : public Work {
 public:
  StagedWork(WorkHandle host_work, Tensor host_result, Tensor destination)
      : host_work_(std::move(host_work)), host_result_(std::move(host_result)), destination_(std::move(destination)) {}

  bool is_completed() override { return copied_ || host_work_->is_completed(); }

  void wait() override {
    if (copied_) return;
    host_work_->wait();  // raises the host collective's error (every time it is asked)
    copy_from_host(host_result_, destination_);
    copied_ = true;
    host_result_ = Tensor();
  }

 private:
  WorkHandle host_work_;
  Tensor host_result_;
  Tensor destination_;
  bool copied_ = false;
};

}  // namespace

WorkHandle StagedBackend::all_reduce(Tensor& tensor, ReduceOp op) {
  Tensor host = copy_to_host(tensor);
  WorkHandle work = host_.all_reduce(host, op);
  return std::make_shared<StagedWork>(std::move(work), host, tensor);
}

WorkHandle StagedBackend::broadcast(Tensor& tensor, int root) {
  Tensor host = copy_to_host(tensor);
  WorkHandle work = host_.broadcast(host, root);
  return std::make_shared<StagedWork>(std::move(work), host, tensor);
}

WorkHandle StagedBackend::all_gather(const Tensor& input, Tensor& output) {
  // The input is copied out before anything is written: an input inside output is fine.
  Tensor host_input = copy_to_host(input);
  Tensor host_output;
  {
    MemoryTagScope communication(MemoryTag::Communication);
    host_output = empty(output.shape(), {.dtype = output.dtype()});
  }
  WorkHandle work = host_.all_gather(host_input, host_output);
  return std::make_shared<StagedWork>(std::move(work), host_output, output);
}

WorkHandle StagedBackend::reduce_scatter(const Tensor& input, Tensor& output, ReduceOp op) {
  Tensor host_input = copy_to_host(input);
  Tensor host_output;
  {
    MemoryTagScope communication(MemoryTag::Communication);
    host_output = empty(output.shape(), {.dtype = output.dtype()});
  }
  WorkHandle work = host_.reduce_scatter(host_input, host_output, op);
  return std::make_shared<StagedWork>(std::move(work), host_output, output);
}

WorkHandle StagedBackend::barrier() { return host_.barrier(); }

}  // namespace dtrain::dist
