#include "dist/comm_hooks.h"

#include <memory>
#include <utility>

#include "core/allocator.h"
#include "core/grad_mode.h"

namespace dtrain::dist {
namespace {

class ContinuedWork final : public Work {
 public:
  ContinuedWork(WorkHandle work, std::function<void()> finish) : work_(std::move(work)), finish_(std::move(finish)) {}

  // Not complete before finish ran (see comm_hooks.h); without a finish, when the work is.
  bool is_completed() override { return finished_ || (!finish_ && work_->is_completed()); }

  void wait() override {
    if (finished_) return;
    work_->wait();
    finished_ = true;  // before finish: a finish that raises is not run twice
    if (finish_) finish_();
  }

 private:
  WorkHandle work_;
  std::function<void()> finish_;
  bool finished_ = false;
};

WorkHandle compress_hook(ProcessGroup& group, HookBucket& bucket, DType wire_dtype) {
  NoGradGuard no_grad;
  Tensor compressed;
  {
    // The half-size copy exists only while the collective runs: count it as communication.
    MemoryTagScope tag(MemoryTag::Communication);
    compressed = bucket.buffer.to(wire_dtype);
  }
  compressed.div_(static_cast<double>(group.size()));
  WorkHandle work = group.all_reduce(compressed, ReduceOp::Sum);
  Tensor buffer = bucket.buffer;
  return then_on_wait(std::move(work), [buffer, compressed]() mutable {
    NoGradGuard no_grad;
    buffer.copy_(compressed);
  });
}

}  // namespace

WorkHandle then_on_wait(WorkHandle work, std::function<void()> finish) {
  return std::make_shared<ContinuedWork>(std::move(work), std::move(finish));
}

WorkHandle allreduce_hook(ProcessGroup& group, HookBucket& bucket) {
  WorkHandle work = group.all_reduce(bucket.buffer, ReduceOp::Sum);
  if (group.size() == 1) return work;
  Tensor buffer = bucket.buffer;
  double ranks = static_cast<double>(group.size());
  // Summing first and dividing once afterwards rounds like one process that averages a batch
  // N times as large (its mean divides once too).
  return then_on_wait(std::move(work), [buffer, ranks]() mutable {
    NoGradGuard no_grad;
    buffer.div_(ranks);
  });
}

WorkHandle fp16_compress_hook(ProcessGroup& group, HookBucket& bucket) {
  return compress_hook(group, bucket, kFloat16);
}

WorkHandle bf16_compress_hook(ProcessGroup& group, HookBucket& bucket) {
  return compress_hook(group, bucket, kBFloat16);
}

}  // namespace dtrain::dist
