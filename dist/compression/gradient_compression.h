#pragma once
// GradientCompression: a DDP communication hook that keeps state between steps — the base of
// PowerSGD, the quantized (int8, 1-bit) and the top-k compressions, all with error feedback.
//
//   auto compression = dist::make_gradient_compression("powersgd:4");
//   ddp.register_comm_hook(dist::as_hook(compression));
//   ... checkpoint: compression->state_dict() on every rank, next to the optimizer's ...
//
// Steps. A compression counts steps by the last bucket of each synchronised backward
// (HookBucket::is_last) and, before its start_step, reduces exactly as allreduce_hook does
// (PyTorch's start_powerSGD_iter): early training is the most sensitive to gradient error.
// dtrain never rebuilds its buckets, so unlike PyTorch's, start_step 0 is allowed with error
// feedback and warm start.
//
// Error feedback (dist/compression/error_feedback.h): each rank adds what compression left out
// of its last contribution to this step's gradient before compressing it, so nothing is lost,
// only delayed.
//
// Every rank must register the same compression with the same options: the collectives a bucket
// issues depend on them.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "dist/comm_hooks.h"
#include "dist/compression/error_feedback.h"
#include "dist/process_group.h"
#include "dist/work.h"
#include "layers/state_dict.h"
#include "optim/state_dict.h"

namespace dtrain::dist {

class GradientCompression {
 public:
  virtual ~GradientCompression() = default;
  GradientCompression(const GradientCompression&) = delete;
  GradientCompression& operator=(const GradientCompression&) = delete;

  // "powersgd rank 4", "int8", "1-bit", "top-1%".
  virtual std::string name() const = 0;
  // The hook itself (see CommunicationHook in dist/comm_hooks.h): the exact all-reduce before
  // start_step, compress() from then on; counts a step on the last bucket.
  virtual WorkHandle reduce(ProcessGroup& group, HookBucket& bucket);
  // This rank's state (error-feedback residuals, PowerSGD's Q matrices, the step counter, the
  // generator): it differs between ranks, so each rank saves its own. Copies; loading them into
  // a compression of the same kind and options continues bitwise. Here: "steps" and the
  // residuals ("residual.<bucket>"); a compression with more state adds its own keys.
  virtual StateDict state_dict() const;
  // Raises dtrain::Error listing every problem (missing keys, wrong dtypes) and changes nothing
  // then.
  virtual void load_state_dict(const StateDict& state);

  // The error-feedback residual of a bucket (undefined before its first compressed step): for tests.
  Tensor residual(size_t bucket_index) const;

  // Steps counted so far (backwards whose last bucket this compression reduced).
  int64_t steps() const { return steps_; }
  int64_t start_step() const { return start_step_; }
  // The payload bytes this compression handed to collectives (all_reduce: the tensor;
  // all_gather: the input) since bucket 0 of the latest backward launched: once backward
  // returned, that step's total. The process-wide count is dist::communication_volume().
  int64_t payload_bytes_last_step() const { return payload_bytes_this_step_; }

 protected:
  explicit GradientCompression(int64_t start_step);

  // Starts reducing a bucket compressed (steps() >= start_step()).
  virtual WorkHandle compress(ProcessGroup& group, HookBucket& bucket) = 0;

  // Collectives that count their payload.
  WorkHandle all_reduce(ProcessGroup& group, Tensor& tensor);
  WorkHandle all_gather(ProcessGroup& group, const Tensor& input, Tensor& output);

  // The step counter's key ("steps") in a state dict.
  void save_steps(StateDict& state) const;
  // Reads "steps" (recording a problem when absent or wrong); apply with set_steps once every
  // key checked out.
  std::optional<int64_t> read_steps(const optim::StateDict& state, optim::StateDictProblems& problems) const;
  void set_steps(int64_t steps) { steps_ = steps; }

  ErrorFeedback error_feedback_;  // every compression here feeds its error back

 private:
  int64_t start_step_;
  int64_t steps_ = 0;
  int64_t payload_bytes_this_step_ = 0;
};

// The CommunicationHook that runs compression (the hook holds it alive).
CommunicationHook as_hook(std::shared_ptr<GradientCompression> compression);

// The compressions by the names the examples' --comm takes: "powersgd:R" (rank R >= 1), "int8",
// "1bit", "topk:F" (fraction kept, 0 < F <= 1), each with its defaults otherwise; raises
// dtrain::Error naming the accepted forms for anything else. All reduce exactly before start_step.
std::shared_ptr<GradientCompression> make_gradient_compression(const std::string& spec, int64_t start_step = 0);

}  // namespace dtrain::dist
