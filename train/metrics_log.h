#pragma once
// MetricsLog: appends one JSON object per line (JSONL) to a file, e.g.
//   {"step":100,"loss":0.4132,"lr":0.001,"samples_per_s":2310.5}
// scripts/plot_metrics.py draws such a file. Appending lets a resumed run continue the same
// file. An empty path disables it.
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace dtrain::train {

using Metric = std::pair<std::string, double>;

class MetricsLog {
 public:
  // Opens path for appending; raises a dtrain::Error naming a path that cannot be opened.
  explicit MetricsLog(const std::string& path);

  // One line with the metrics in order. Whole numbers print without a fraction, others with
  // the fewest digits that read back exactly; NaN and infinities as null.
  void write(const std::vector<Metric>& metrics);

 private:
  std::ofstream file_;
};

}  // namespace dtrain::train
