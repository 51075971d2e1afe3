#pragma once
// StepLog: the usual report after each training step — the progress line (step, loss,
// throughput, ETA) and, every `every` steps and at the last, one metrics record
//   {"step":100,"loss":0.4132,"lr":0.001,"samples_per_s":2310.5,"step_s":0.0554,"comm_bytes_per_step":3236000}
// whose loss, throughput, seconds per step and communication (payload bytes this rank handed to
// collectives, dist/communication_volume.h) are the means since the previous record. Rank 0 logs; give the
// other ranks an empty metrics path.
//
//   train::StepLog log(last_step, "samples", 50, "run.jsonl");
//   trainer.set_callbacks([&](const train::StepReport& report) { log.record(report, batch_size); },
//                         [&](const std::string&, int64_t) { log.progress().exclude_pause(); });
#include <cstdint>
#include <string>

#include "train/metrics_log.h"
#include "train/trainer.h"
#include "train/trainer_progress_line.h"

namespace dtrain::train {

class StepLog {
 public:
  // unit: what the throughput counts ("samples", "tokens"); metrics_path: a JSONL file to append
  // to (empty: none; one that cannot be opened raises dtrain::Error).
  StepLog(int64_t last_step, const std::string& unit, int64_t every, const std::string& metrics_path);

  // After a step that processed `items` (over all ranks).
  void record(const StepReport& report, int64_t items);

  ProgressLine& progress() { return progress_; }
  MetricsLog& metrics() { return metrics_; }

 private:
  int64_t last_step_;
  int64_t every_;
  std::string throughput_name_;  // "samples_per_s"
  MetricsLog metrics_;
  ProgressLine progress_;
  int64_t window_communication_bytes_ = 0;
  int64_t window_steps_ = 0;
};

}  // namespace dtrain::train
