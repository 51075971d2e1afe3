#include "dist/zero/sharded_construction.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "core/error.h"
#include "dist/zero/zero_optimizer.h"

namespace dtrain::dist {

namespace {

std::string bytes_text(int64_t bytes) {
  char text[32];
  const double value = static_cast<double>(bytes);
  if (bytes < 1024) std::snprintf(text, sizeof text, "%lld B", static_cast<long long>(bytes));
  else if (bytes < (int64_t{1} << 20)) std::snprintf(text, sizeof text, "%.1f KiB", value / 1024.0);
  else std::snprintf(text, sizeof text, "%.1f MiB", value / 1048576.0);
  return text;
}

}  // namespace

int64_t ShardedSetupBound::total() const {
  return std::max(construction, held + communication + largest_unit + write_scratch + buffers);
}

std::string ShardedSetupBound::str() const {
  std::ostringstream line;
  line << "setup bound " << bytes_text(total()) << " = held " << bytes_text(held) << " + comm " << bytes_text(communication)
       << " + largest unit " << bytes_text(largest_unit) << " + write scratch " << bytes_text(write_scratch)
       << " + buffers " << bytes_text(buffers) << " (construction " << bytes_text(construction) << ")";
  return line.str();
}

ShardedSetupBound sharded_setup_bound(const ZeroOptimizer& zero) {
  ShardedSetupBound bound;
  const ZeroMemoryReport report = zero.memory_report();
  bound.held = report.held.total();
  bound.communication = report.held_communication;
  const int64_t compute_size = static_cast<int64_t>(dtype_size(zero.compute_dtype()));
  bool converts = zero.compute_dtype() != kFloat32;
  int64_t largest_parameter = 0;
  for (const auto& [name, parameter] : zero.module().named_parameters()) {
    largest_parameter = std::max(largest_parameter, parameter.numel());
    converts = converts || !parameter.device().is_cpu();
  }
  for (const ShardedUnit& unit : zero.units()) {
    if (zero.stage() == 3 && !unit.persistent) {
      bound.largest_unit = std::max(bound.largest_unit, unit.padded_total() * compute_size);
    }
    converts = converts || unit.has_own_master();  // master pieces may start mid-pair
  }
  if (converts) {
    bound.write_scratch = (std::min(largest_parameter, DeferredParameters::kWriteChunkElements) + 1) * 4;
  }
  for (const auto& [name, buffer] : zero.module().named_buffers()) {
    if (buffer.storage()->is_resident()) bound.buffers += static_cast<int64_t>(buffer.nbytes());
  }
  bound.construction = largest_parameter * static_cast<int64_t>(dtype_size(zero.master_dtype()));
  return bound;
}

void append_deferred_settings(const DeferredParameters& deferred, const Module& model, RunSettings& settings) {
  for (const std::string& line : deferred.describe(model)) settings.emplace_back("deferred initialisation", line);
}

void prepare_initial_values(const DeferredParameters* deferred, const std::vector<NamedTensor>& parameters,
                            const char* who) {
  for (const auto& [name, parameter] : parameters) {
    if (deferred && deferred->contains(parameter)) {
      if (!parameter.requires_grad()) deferred->materialize(parameter);
      continue;
    }
    if (!parameter.storage()->is_resident()) {
      fail(who, ": parameter '", name, "' holds no bytes (a model built under a DeferredInit needs its ",
           "DeferredParameters: ZeroOptimizer(model, deferred.parameters(), factory, options))");
    }
  }
}

}  // namespace dtrain::dist
