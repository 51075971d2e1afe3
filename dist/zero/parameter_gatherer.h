#pragma once
// ParameterGatherer: ZeRO-3's parameter path. Each rank stores only its shard of every unit (the
// parameters of one module); hooks on the modules gather a unit (all-gather of every rank's
// shard into the unit's flat buffer, which the parameters are views of) just before the
// module's forward and again just before its backward, and free it after the forward and once
// its gradients are in. The order in which units were needed is recorded in the first iteration;
// later iterations prefetch the next units of that order, up to prefetch_bytes, while the current
// module computes.
//
// Every rank must gather the same units in the same order (they are collectives). With
// DTRAIN_DEBUG_COLLECTIVES (or set_collective_checks(true)) every gather and gradient reduction is
// preceded by a check that all ranks are about to do the same one, so a module whose forward runs
// a different number of times on different ranks, or that a rank skips, raises a dtrain::Error
// naming both on every rank instead of hanging or mixing unrelated buffers.
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dist/process_group.h"
#include "dist/zero/sharded_unit.h"
#include "layers/module.h"

namespace dtrain::dist {

class ParameterGatherer {
 public:
  // module_units: for each module with parameters of its own, the (non-persistent) units holding
  // them. Registers forward-pre, forward and backward-pre hooks on those modules.
  ParameterGatherer(ProcessGroup& group, std::vector<ShardedUnit>& units,
                    std::vector<std::pair<Module*, std::vector<size_t>>> module_units, size_t prefetch_bytes);
  ~ParameterGatherer();
  ParameterGatherer(const ParameterGatherer&) = delete;
  ParameterGatherer& operator=(const ParameterGatherer&) = delete;

  void begin_forward();
  void end_forward();
  void begin_backward();
  void end_backward();
  // After a backward that went through: checks, with one small all-gather, that every rank ran
  // each module's forward and backward as many times in this iteration, and raises on every
  // rank, naming the first module that differs, otherwise. (A rank that skips a module can
  // issue the same collectives as the others when prefetch gathered it anyway, so the order
  // check alone would not see it.)
  void check_same_modules_ran();

  // Frees a unit's gathered parameters (not a persistent one's).
  void release(size_t unit);
  // Frees every gathered non-persistent unit.
  void release_all();

  // In debug mode: checks, with one small all-gather, that every rank is about to issue the same
  // collective for the same unit, and raises on every rank otherwise. `action` is "gather" or
  // "reduce-scatter gradients of".
  enum class Action : int64_t { Gather = 0, ReduceGradients = 1 };
  void check_same_collective(size_t unit, Action action);

  // The recorded order of units needed in forward and in backward (empty before the first
  // iteration ended).
  const std::vector<size_t>& forward_order() const { return trace_[0]; }
  const std::vector<size_t>& backward_order() const { return trace_[1]; }

 private:
  enum Phase : int { Forward = 0, Backward = 1, Idle = 2 };
  void need(size_t unit);
  void start_gather(size_t unit);
  void prefetch();

  ProcessGroup& group_;
  std::vector<ShardedUnit>& units_;
  std::vector<std::pair<Module*, std::vector<size_t>>> module_units_;
  size_t prefetch_bytes_;
  std::vector<HookHandle> hooks_;

  Phase phase_ = Idle;
  bool recording_ = true;  // the first iteration records the order
  std::vector<size_t> trace_[2];
  size_t cursor_ = 0;           // next position in the current phase's trace
  bool follows_trace_ = false;  // this phase has matched the trace so far: prefetch is safe
  int64_t collectives_ = 0;     // checked collectives in this iteration (for messages)
  std::vector<int64_t> runs_;   // by unit: forward needs, then by unit: backward needs, this iteration
};

}  // namespace dtrain::dist
