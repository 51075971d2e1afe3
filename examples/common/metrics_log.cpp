#include "examples/common/metrics_log.h"

#include <charconv>
#include <cmath>

#include "core/json.h"
#include "tools/command_line/program_exit.h"

namespace dtrain::examples {

namespace {

JsonValue number(double value) {
  if (!std::isfinite(value)) return JsonValue();  // JSON has no NaN or infinity
  char text[32];
  auto result = std::to_chars(text, text + sizeof text, value);  // shortest exact form
  return JsonValue::number_text(std::string(text, result.ptr));
}

}  // namespace

MetricsLog::MetricsLog(const std::string& path) {
  if (path.empty()) return;
  file_.open(path, std::ios::app);
  if (!file_) usage_error("cannot open the metrics file '", path, "' for appending");
}

void MetricsLog::write(const std::vector<Metric>& metrics) {
  if (!file_.is_open()) return;
  JsonValue line = JsonValue::object();
  for (const auto& [name, value] : metrics) line.add(name, number(value));
  file_ << write_json(line) << '\n';
  file_.flush();  // a crash or Ctrl-C keeps every line written so far
}

}  // namespace dtrain::examples
