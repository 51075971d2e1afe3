#include "train/trainer_step_log.h"

namespace dtrain::train {

StepLog::StepLog(int64_t last_step, const std::string& unit, int64_t every, const std::string& metrics_path)
    : last_step_(last_step),
      every_(every < 1 ? 1 : every),
      throughput_name_(unit + "_per_s"),
      metrics_(metrics_path),
      progress_(last_step, unit + "/s", every) {}

void StepLog::record(const StepReport& report, int64_t items) {
  progress_.update(report.step, report.loss, items);
  window_communication_bytes_ += report.communication_bytes;
  ++window_steps_;
  if (report.step % every_ != 0 && report.step != last_step_) return;
  metrics_.write({{"step", report.step},
                  {"loss", progress_.mean_loss()},
                  {"lr", report.lr},
                  {throughput_name_, progress_.throughput()},
                  {"step_s", progress_.seconds_per_step()},
                  {"comm_bytes_per_step", static_cast<double>(window_communication_bytes_) / static_cast<double>(window_steps_)}});
  progress_.reset_window();
  window_communication_bytes_ = 0;
  window_steps_ = 0;
}

}  // namespace dtrain::train
