#include "dist/zero/memory_report.h"

#include <cstdio>
#include <sstream>

namespace dtrain::dist {
namespace {

std::string bytes_text(int64_t bytes) {
  char text[32];
  const double value = static_cast<double>(bytes);
  if (bytes < 1024 && bytes > -1024) std::snprintf(text, sizeof text, "%lld B", static_cast<long long>(bytes));
  else if (bytes < (int64_t{1} << 20) && bytes > -(int64_t{1} << 20)) std::snprintf(text, sizeof text, "%.1f KiB", value / 1024.0);
  else if (bytes < (int64_t{1} << 30) && bytes > -(int64_t{1} << 30)) std::snprintf(text, sizeof text, "%.1f MiB", value / 1048576.0);
  else std::snprintf(text, sizeof text, "%.2f GiB", value / 1073741824.0);
  return text;
}

// Adam's (two state tensors per element).
const char* formula_text(int stage, bool mixed) {
  static const char* fp[] = {"16Ψ", "8Ψ + 8Ψ/N", "4Ψ + 12Ψ/N", "16Ψ/N"};
  static const char* half[] = {"16Ψ", "4Ψ + 12Ψ/N", "2Ψ + 14Ψ/N", "16Ψ/N"};
  if (stage < 0 || stage > 3) return "?";
  return mixed ? half[stage] : fp[stage];
}

}  // namespace

ZeroModelStateBytes zero_model_state_bytes(int stage, int64_t parameter_count, int64_t shard_parameter_count,
                                           DType compute_dtype, DType master_dtype, int64_t states_per_element) {
  const int64_t c = static_cast<int64_t>(dtype_size(compute_dtype));
  const int64_t m = static_cast<int64_t>(dtype_size(master_dtype));
  const int64_t optimizer_per_element = (compute_dtype != master_dtype ? m : 0) + states_per_element * m;
  const int64_t whole = parameter_count;
  const int64_t shard = shard_parameter_count;
  ZeroModelStateBytes bytes;
  bytes.parameters = c * (stage == 3 ? shard : whole);
  bytes.gradients = c * (stage >= 2 ? shard : whole);
  bytes.optimizer_state = optimizer_per_element * (stage >= 1 ? shard : whole);
  return bytes;
}

ZeroModelStateBytes ZeroMemoryReport::expected() const {
  return zero_model_state_bytes(stage, parameter_count, shard_parameter_count, compute_dtype, master_dtype,
                                states_per_element);
}

std::string ZeroMemoryReport::str() const {
  std::ostringstream line;
  line << "zero-" << stage << " rank " << rank << "/" << world_size << " " << dtype_name(compute_dtype)
       << (compute_dtype != master_dtype ? std::string("+") + dtype_name(master_dtype) + " masters" : std::string())
       << ": params " << bytes_text(parameters.current) << " (peak " << bytes_text(parameters.peak) << "), grads "
       << bytes_text(gradients.current) << " (peak " << bytes_text(gradients.peak) << "), optimizer "
       << bytes_text(optimizer_state.current) << " (peak " << bytes_text(optimizer_state.peak) << "), comm "
       << bytes_text(communication.current) << " (peak " << bytes_text(communication.peak) << "); model state held "
       << bytes_text(held.total()) << " = "
       << (states_per_element == 2 ? formula_text(stage, compute_dtype != master_dtype) : "the formula") << " ("
       << bytes_text(expected().total()) << ") + padding " << bytes_text(padding.total());
  return line.str();
}

}  // namespace dtrain::dist
