#include "tools/cost_model/prediction_table.h"

#include <cstdio>
#include <string>
#include <vector>

namespace dtrain::cost_model {

namespace {

std::string format(const char* pattern, double value) {
  char text[64];
  std::snprintf(text, sizeof text, pattern, value);
  return text;
}

}  // namespace

std::string step_time_table(const std::vector<StepPrediction>& predictions) {
  double ddp_step = 0;
  for (const StepPrediction& prediction : predictions) {
    if (prediction.method == "ddp") ddp_step = prediction.step_seconds;
  }
  std::string table =
      "| method | collectives/step | payload MB/step | sent MB/step | communication ms | exposed ms | step ms | vs DDP |\n"
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const StepPrediction& prediction : predictions) {
    table += "| " + prediction.method + " | " + format("%.4g", prediction.collectives) + " | " +
             format("%.3f", prediction.payload_bytes / 1e6) + " | " + format("%.3f", prediction.bytes_sent / 1e6) + " | " +
             format("%.2f", prediction.communication_seconds * 1e3) + " | " +
             format("%.2f", prediction.exposed_seconds * 1e3) + " | " + format("%.2f", prediction.step_seconds * 1e3) +
             " | " + (ddp_step > 0 ? format("%.2fx", prediction.step_seconds / ddp_step) : std::string("-")) + " |\n";
  }
  return table;
}

std::string all_reduce_algorithm_table(const Network& network, double bytes) {
  std::string table = "| all-reduce of " + format("%.3f", bytes / 1e6) + " MB | ms |\n| --- | ---: |\n";
  for (AllReduceAlgorithm algorithm :
       {AllReduceAlgorithm::Ring, AllReduceAlgorithm::Tree, AllReduceAlgorithm::Hierarchical}) {
    Network variant = network;
    variant.all_reduce_algorithm = algorithm;
    table += "| " + all_reduce_algorithm_name(algorithm) + (algorithm == network.all_reduce_algorithm ? " (used)" : "") +
             " | " + format("%.3f", all_reduce_seconds(variant, bytes) * 1e3) + " |\n";
  }
  return table;
}

}  // namespace dtrain::cost_model
