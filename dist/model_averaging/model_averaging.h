#pragma once
// Umbrella header of the model averagers: training that synchronises the parameters now and then
// instead of the gradients at every step, for networks too slow for DDP's all-reduce per step.
//   - PostLocalSgd: DDP for the first steps, then local steps with a parameter average every H.
//   - GossipAveraging: D-PSGD, each rank averages with its ring neighbours after every step.
// Both move the parameters in flat buckets (dist/model_averaging/parameter_buckets.h).
#include "dist/model_averaging/gossip_averaging.h"
#include "dist/model_averaging/parameter_buckets.h"
#include "dist/model_averaging/post_local_sgd.h"
