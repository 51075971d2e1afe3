#pragma once
// The cost model's output: Markdown tables of the predictions (tools/cost_model/step_time.h).
#include <string>
#include <vector>

#include "tools/cost_model/collective_cost.h"
#include "tools/cost_model/step_time.h"

namespace dtrain::cost_model {

// One row per method: collectives, payload and wire bytes per rank per step (MB = 1e6 bytes),
// the communication, its exposed part and the step (ms), and the step's ratio to DDP's when
// "ddp" is among the predictions ("-" otherwise).
std::string step_time_table(const std::vector<StepPrediction>& predictions);

// One all-reduce of bytes by each algorithm on the network (ms), the one the network uses marked.
std::string all_reduce_algorithm_table(const Network& network, double bytes);

}  // namespace dtrain::cost_model
