#pragma once
// Sharded construction: ZeroOptimizer over a model built under a DeferredInit
// (layers/deferred_init.h). The parameters hold no bytes until ZeroOptimizer writes each unit's
// initial values straight into its flat buffer (at stage 3 one module's parameters, freed to this
// rank's shard before the next module's), so setup never holds the whole model:
//
//   manual_seed(0);                                     // the same seed on every rank
//   DeferredModel<GPT> built = build_deferred<GPT>(config);
//   dist::ZeroOptimizer zero(built.model, built.parameters, factory, {.stage = 3});
//
// The values equal, bit for bit, those of a whole build from the same seed sharded by
// ZeroOptimizer(model, factory, options). The setup peak is at most ShardedSetupBound below.
#include <cstdint>
#include <string>
#include <vector>

#include "dist/model_consistency.h"
#include "layers/deferred_init.h"
#include "layers/module.h"

namespace dtrain::dist {

class ZeroOptimizer;

// The bytes a ZeroOptimizer built over a deferred model holds at most, all tags together, from
// the start of the deferred build to the end of its setup:
//   held + communication + largest_unit + write_scratch + buffers
// held: the model state it keeps (at stage 3 cΨ/N parameters + cΨ/N gradients + m'Ψ/N masters
// and the persistent unit, padding included; at stages 0-2 the flat buffers it keeps whole);
// largest_unit: at stage 3, the flat buffer of the largest gathered unit (one module's full
// parameters in the compute dtype), held while its values are written and cut to the shard;
// write_scratch: one float32 chunk of DeferredParameters::write when a write converts (another
// dtype or device) or starts mid-pair (mixed-precision masters); buffers: the model's buffers.
// Building the model holds one parameter at a time (construction), before any of the rest.
struct ShardedSetupBound {
  int64_t held = 0;
  int64_t communication = 0;
  int64_t largest_unit = 0;
  int64_t write_scratch = 0;
  int64_t buffers = 0;
  int64_t construction = 0;  // the largest parameter, in the deferred dtype
  int64_t total() const;
  // "setup bound 12.3 MiB = held 8.0 MiB + largest unit 4.0 MiB + scratch 0 B + ..."
  std::string str() const;
};

// The bound for zero right after its construction (before the first step adds optimizer state).
ShardedSetupBound sharded_setup_bound(const ZeroOptimizer& zero);

// For ZeroOptimizer's setup. Adds one setting per deferred parameter (its recorded draw), which
// the ranks' settings check then compares: every rank must draw the same values.
void append_deferred_settings(const DeferredParameters& deferred, const Module& model, RunSettings& settings);
// Materialises the deferred parameters that will not be trained (ZeRO keeps them whole) and
// raises, naming it, for any other parameter without bytes (a deferred model passed without its
// DeferredParameters). Local, and the same on every rank for the same model.
void prepare_initial_values(const DeferredParameters* deferred, const std::vector<NamedTensor>& parameters,
                            const char* who);

}  // namespace dtrain::dist
