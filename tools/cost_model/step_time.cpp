#include "tools/cost_model/step_time.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/error.h"

namespace dtrain::cost_model {

namespace {

constexpr const char* kAcceptedMethods =
    "ddp, zero1, zero2, zero3, powersgd:R (R >= 1), int8, 1bit, topk:F (0 < F <= 1), local-sgd:H (H >= 1), gossip";

// The number after "name:" in spec, or a raised error naming the accepted forms.
double setting_after_colon(const std::string& spec, size_t colon) {
  const std::string text = spec.substr(colon + 1);
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(value)) {
    fail("method '", spec, "': expected a number after ':'; the methods: ", kAcceptedMethods);
  }
  return value;
}

int64_t elements_of(const std::vector<ParameterShape>& parameters) {
  int64_t elements = 0;
  for (const ParameterShape& parameter : parameters) elements += parameter.elements();
  return elements;
}

double ceil_division(int64_t numerator, int64_t denominator) {
  return static_cast<double>((numerator + denominator - 1) / denominator);
}

// Bytes one rank contributes to a compressed bucket's all-gather.
double compressed_bytes(const MethodChoice& method, int64_t elements, const StepSettings& settings) {
  const double scales = 4.0 * ceil_division(elements, settings.chunk_elements);
  switch (method.method) {
    case Method::Int8: return static_cast<double>(elements) + scales;
    case Method::OneBit: return ceil_division(elements, 8) + scales;
    case Method::TopK: {
      const double kept = std::ceil(method.setting * static_cast<double>(elements));
      return kept * static_cast<double>(4 + settings.index_bytes);
    }
    default: return 0;
  }
}

}  // namespace

MethodChoice method_from_spec(const std::string& spec) {
  const size_t colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  if (colon == std::string::npos) {
    if (spec == "ddp") return {Method::Ddp, 0, spec};
    if (spec == "zero1") return {Method::Zero1, 0, spec};
    if (spec == "zero2") return {Method::Zero2, 0, spec};
    if (spec == "zero3") return {Method::Zero3, 0, spec};
    if (spec == "int8") return {Method::Int8, 0, spec};
    if (spec == "1bit") return {Method::OneBit, 0, spec};
    if (spec == "gossip") return {Method::Gossip, 0, spec};
  } else if (name == "powersgd" || name == "topk" || name == "local-sgd") {
    const double value = setting_after_colon(spec, colon);
    if (name == "topk") {
      if (!(value > 0 && value <= 1)) fail("method '", spec, "': the fraction kept must be in (0, 1], got ", value);
      return {Method::TopK, value, spec};
    }
    if (value < 1 || value != std::floor(value)) {
      fail("method '", spec, "': ", name == "powersgd" ? "the rank" : "the period", " must be a whole number >= 1, got ", value);
    }
    return {name == "powersgd" ? Method::PowerSgd : Method::LocalSgd, value, spec};
  }
  fail("unknown method '", spec, "': expected one of ", kAcceptedMethods);
}

std::vector<MethodChoice> default_methods() {
  std::vector<MethodChoice> methods;
  for (const char* spec : {"ddp", "zero1", "zero2", "zero3", "powersgd:4", "int8", "1bit", "topk:0.01", "local-sgd:8", "gossip"}) {
    methods.push_back(method_from_spec(spec));
  }
  return methods;
}

namespace {

// Collectives of one kind, one per bucket (in launch order), that can run under window: all but
// the last launched, which starts only when the window's compute is over and so is exposed.
void add_per_bucket(std::vector<CommunicationPhase>& phases, const std::string& what, CollectiveKind kind,
                    const std::vector<double>& bytes_per_bucket, OverlapWindow window) {
  if (bytes_per_bucket.empty()) return;
  CommunicationPhase overlapped{what, kind, 0, 0, 1, window};
  for (size_t bucket = 0; bucket + 1 < bytes_per_bucket.size(); ++bucket) {
    overlapped.collectives += 1;
    overlapped.bytes += bytes_per_bucket[bucket];
  }
  if (overlapped.collectives > 0) phases.push_back(overlapped);
  const bool exposed = window != OverlapWindow::None;
  phases.push_back({exposed ? what + " (last)" : what, kind, 1, bytes_per_bucket.back(), 1, OverlapWindow::None});
}

}  // namespace

std::vector<CommunicationPhase> communication_phases(const MethodChoice& method, const ModelShape& model,
                                                     const StepSettings& settings, int64_t ranks) {
  const double element_bytes = static_cast<double>(settings.element_bytes);
  const double model_bytes = static_cast<double>(model.parameter_count()) * element_bytes;
  const auto ddp_buckets = bucket_parameters(model, settings.element_bytes, settings.bucket_cap_bytes,
                                             settings.first_bucket_cap_bytes);
  const auto bucket_count = static_cast<int64_t>(ddp_buckets.size());
  auto bytes_of = [element_bytes](const std::vector<std::vector<ParameterShape>>& buckets) {
    std::vector<double> bytes;
    for (const auto& bucket : buckets) bytes.push_back(static_cast<double>(elements_of(bucket)) * element_bytes);
    return bytes;
  };
  std::vector<CommunicationPhase> phases;
  switch (method.method) {
    case Method::Ddp:
      add_per_bucket(phases, "gradient all-reduce", CollectiveKind::AllReduce, bytes_of(ddp_buckets), OverlapWindow::Backward);
      break;
    case Method::Zero1:
    case Method::Zero2: {
      const auto zero_buckets = bucket_parameters(model, settings.element_bytes, settings.zero_bucket_cap_bytes, 0);
      add_per_bucket(phases, "gradient reduce-scatter", CollectiveKind::ReduceScatter, bytes_of(zero_buckets),
                     OverlapWindow::Backward);
      phases.push_back({"parameter all-gather", CollectiveKind::AllGather, static_cast<int64_t>(zero_buckets.size()),
                        model_bytes, 1, OverlapWindow::None});
      break;
    }
    case Method::Zero3: {
      // Forward gathers module by module from the first (prefetching the next ones); backward
      // gathers and reduces from the last, so the first module's reduce-scatter comes last.
      std::vector<double> forward_order;
      for (const ModuleShape& module : model.modules) {
        double elements = 0;
        for (const ParameterShape& parameter : module.parameters) elements += static_cast<double>(parameter.elements());
        forward_order.push_back(elements * element_bytes);
      }
      std::vector<double> backward_order(forward_order.rbegin(), forward_order.rend());
      // The first gather has nothing to hide under: it is the last of this reversed list.
      add_per_bucket(phases, "forward parameter all-gather", CollectiveKind::AllGather, backward_order, OverlapWindow::Forward);
      phases.push_back({"backward parameter all-gather", CollectiveKind::AllGather,
                        static_cast<int64_t>(model.modules.size()), model_bytes, 1, OverlapWindow::Backward});
      add_per_bucket(phases, "gradient reduce-scatter", CollectiveKind::ReduceScatter, backward_order, OverlapWindow::Backward);
      break;
    }
    case Method::PowerSgd: {
      const auto rank = static_cast<int64_t>(method.setting);
      std::vector<double> p_bytes, q_bytes, uncompressed_bytes;
      for (const auto& bucket : ddp_buckets) {
        int64_t p_elements = 0, q_elements = 0, uncompressed = 0;
        for (const ParameterShape& parameter : bucket) {
          const bool compresses = parameter.is_matrix() && (parameter.rows + parameter.columns) * rank < parameter.elements();
          if (compresses) {
            p_elements += parameter.rows * rank;
            q_elements += parameter.columns * rank;
          } else {
            uncompressed += parameter.elements();
          }
        }
        if (p_elements > 0) {
          p_bytes.push_back(static_cast<double>(p_elements) * element_bytes);
          q_bytes.push_back(static_cast<double>(q_elements) * element_bytes);
        }
        if (uncompressed > 0) uncompressed_bytes.push_back(static_cast<double>(uncompressed) * element_bytes);
      }
      add_per_bucket(phases, "uncompressed all-reduce", CollectiveKind::AllReduce, uncompressed_bytes, OverlapWindow::Backward);
      add_per_bucket(phases, "PowerSGD P all-reduce", CollectiveKind::AllReduce, p_bytes, OverlapWindow::Backward);
      add_per_bucket(phases, "PowerSGD Q all-reduce", CollectiveKind::AllReduce, q_bytes, OverlapWindow::Backward);
      break;
    }
    case Method::Int8:
    case Method::OneBit:
    case Method::TopK: {
      std::vector<double> gathered;
      for (const auto& bucket : ddp_buckets) {
        gathered.push_back(static_cast<double>(ranks) * compressed_bytes(method, elements_of(bucket), settings));
      }
      add_per_bucket(phases, method.method == Method::TopK ? "indices and values all-gather" : "quantized all-gather",
                     CollectiveKind::AllGather, gathered, OverlapWindow::Backward);
      break;
    }
    case Method::LocalSgd:
      phases.push_back({"parameter all-reduce", CollectiveKind::AllReduce, bucket_count, model_bytes, 1.0 / method.setting,
                        OverlapWindow::None});
      break;
    case Method::Gossip:
      phases.push_back({"neighbour exchange", CollectiveKind::NeighbourExchange, bucket_count, model_bytes, 1, OverlapWindow::None});
      break;
  }
  return phases;
}

double phase_seconds(const CommunicationPhase& phase, const Network& network) {
  if (phase.collectives == 0) return 0;
  // The costs are linear in the bytes: k collectives of n bytes in all cost k times one of n / k.
  const double each = phase.bytes / static_cast<double>(phase.collectives);
  double one = 0;
  switch (phase.kind) {
    case CollectiveKind::AllReduce: one = all_reduce_seconds(network, each); break;
    case CollectiveKind::AllGather: one = all_gather_seconds(network, each); break;
    case CollectiveKind::ReduceScatter: one = reduce_scatter_seconds(network, each); break;
    case CollectiveKind::NeighbourExchange: one = neighbour_exchange_seconds(network, each); break;
  }
  return phase.per_step * static_cast<double>(phase.collectives) * one;
}

StepPrediction predict_step(const MethodChoice& method, const ModelShape& model, const Network& network,
                            const StepSettings& settings) {
  validate(network);
  if (!(settings.compute_seconds >= 0)) fail("the compute time per step must be >= 0, got ", settings.compute_seconds, " s");
  if (!(settings.overlap >= 0 && settings.overlap <= 1)) fail("the overlap fraction must be in [0, 1], got ", settings.overlap);
  if (!(settings.backward_fraction >= 0 && settings.backward_fraction <= 1)) {
    fail("the backward fraction must be in [0, 1], got ", settings.backward_fraction);
  }
  const int64_t ranks = network.ranks;
  StepPrediction prediction;
  prediction.method = method.spec;
  double by_window[3] = {0, 0, 0};  // None, Forward, Backward
  for (const CommunicationPhase& phase : communication_phases(method, model, settings, ranks)) {
    const double seconds = phase_seconds(phase, network);
    by_window[static_cast<int>(phase.window)] += seconds;
    prediction.communication_seconds += seconds;
    prediction.collectives += phase.per_step * static_cast<double>(phase.collectives);
    double handed = 0, sent = 0;
    switch (phase.kind) {
      case CollectiveKind::AllReduce: handed = phase.bytes, sent = all_reduce_bytes_sent(ranks, phase.bytes); break;
      case CollectiveKind::AllGather:
        handed = phase.bytes / static_cast<double>(ranks), sent = all_gather_bytes_sent(ranks, phase.bytes);
        break;
      case CollectiveKind::ReduceScatter: handed = phase.bytes, sent = all_gather_bytes_sent(ranks, phase.bytes); break;
      case CollectiveKind::NeighbourExchange:
        handed = neighbour_exchange_bytes_sent(ranks, phase.bytes), sent = handed;
        break;
    }
    prediction.payload_bytes += phase.per_step * handed;
    prediction.bytes_sent += phase.per_step * sent;
  }
  const double windows[3] = {0, (1 - settings.backward_fraction) * settings.compute_seconds,
                             settings.backward_fraction * settings.compute_seconds};
  prediction.exposed_seconds = by_window[0];
  for (int window = 1; window < 3; ++window) {
    const double hidden = std::min(settings.overlap * by_window[window], windows[window]);
    prediction.exposed_seconds += by_window[window] - hidden;
  }
  prediction.step_seconds = settings.compute_seconds + prediction.exposed_seconds;
  return prediction;
}

}  // namespace dtrain::cost_model
