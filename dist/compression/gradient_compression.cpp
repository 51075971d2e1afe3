#include "dist/compression/gradient_compression.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <utility>

#include "core/error.h"
#include "dist/compression/powersgd_compression.h"
#include "dist/compression/quantized_compression.h"
#include "dist/compression/topk_compression.h"

namespace dtrain::dist {
namespace {

constexpr const char* kAcceptedForms =
    "expected one of \"powersgd:R\" (R: the rank, an integer >= 1), \"int8\", \"1bit\", "
    "\"topk:F\" (F: the fraction of values kept, 0 < F <= 1)";

// The whole of text as a number, or nothing (no trailing characters, no empty text).
std::optional<int64_t> parse_integer(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  long long value = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end != text.c_str() + text.size()) return std::nullopt;
  return static_cast<int64_t>(value);
}

std::optional<double> parse_fraction(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  double value = std::strtod(text.c_str(), &end);
  if (errno != 0 || end != text.c_str() + text.size() || !std::isfinite(value)) return std::nullopt;
  return value;
}

}  // namespace

GradientCompression::GradientCompression(int64_t start_step) : start_step_(start_step) {
  if (start_step < 0) fail("gradient compression: expected start_step >= 0, got ", start_step);
}

WorkHandle GradientCompression::reduce(ProcessGroup& group, HookBucket& bucket) {
  if (bucket.index == 0) payload_bytes_this_step_ = 0;
  WorkHandle work;
  if (steps_ < start_step_) {
    payload_bytes_this_step_ += static_cast<int64_t>(bucket.buffer.nbytes());
    work = allreduce_hook(group, bucket);
  } else {
    work = compress(group, bucket);
  }
  if (bucket.is_last) ++steps_;
  return work;
}

WorkHandle GradientCompression::all_reduce(ProcessGroup& group, Tensor& tensor) {
  payload_bytes_this_step_ += static_cast<int64_t>(tensor.nbytes());
  return group.all_reduce(tensor, ReduceOp::Sum);
}

WorkHandle GradientCompression::all_gather(ProcessGroup& group, const Tensor& input, Tensor& output) {
  payload_bytes_this_step_ += static_cast<int64_t>(input.nbytes());
  return group.all_gather(input, output);
}

void GradientCompression::save_steps(StateDict& state) const { state.insert("steps", optim::int64_scalar(steps_)); }

std::optional<int64_t> GradientCompression::read_steps(const optim::StateDict& state,
                                                       optim::StateDictProblems& problems) const {
  std::optional<double> steps = problems.number(state, "steps", kInt64);
  if (!steps) return std::nullopt;
  if (*steps < 0) {
    problems.add(detail::concat("key 'steps': expected a count >= 0, got ", *steps));
    return std::nullopt;
  }
  return static_cast<int64_t>(*steps);
}

StateDict GradientCompression::state_dict() const {
  StateDict state;
  save_steps(state);
  error_feedback_.save(state);
  return state;
}

void GradientCompression::load_state_dict(const StateDict& state) {
  optim::StateDict entries = state.to_map();
  optim::StateDictProblems problems;
  std::optional<int64_t> steps = read_steps(entries, problems);
  std::map<size_t, Tensor> residuals = error_feedback_.read(entries, problems);
  problems.raise_if_any("gradient compression " + name() + ": load_state_dict");
  set_steps(*steps);
  error_feedback_.replace(std::move(residuals));
}

Tensor GradientCompression::residual(size_t bucket_index) const {
  return error_feedback_.has_residual(bucket_index) ? error_feedback_.residual(bucket_index) : Tensor();
}

CommunicationHook as_hook(std::shared_ptr<GradientCompression> compression) {
  if (!compression) fail("as_hook: expected a gradient compression, got null");
  return [compression = std::move(compression)](ProcessGroup& group, HookBucket& bucket) {
    return compression->reduce(group, bucket);
  };
}

std::shared_ptr<GradientCompression> make_gradient_compression(const std::string& spec, int64_t start_step) {
  if (start_step < 0) fail("make_gradient_compression: expected start_step >= 0, got ", start_step);
  size_t colon = spec.find(':');
  std::string kind = spec.substr(0, colon);
  bool has_argument = colon != std::string::npos;
  std::string argument = has_argument ? spec.substr(colon + 1) : "";
  if (kind == "int8" || kind == "1bit") {
    if (has_argument) fail("make_gradient_compression: \"", kind, "\" takes no argument, got \"", spec, "\"; ", kAcceptedForms);
    return std::make_shared<QuantizedCompression>(
        QuantizedOptions{.bits = kind == "int8" ? 8 : 1, .start_step = start_step});
  }
  if (kind == "powersgd") {
    std::optional<int64_t> rank = parse_integer(argument);
    if (!has_argument || !rank || *rank < 1) {
      fail("make_gradient_compression: expected a rank (an integer >= 1) after \"powersgd:\", got \"", spec, "\"; ",
           kAcceptedForms);
    }
    return std::make_shared<PowerSgdCompression>(PowerSgdOptions{.rank = *rank, .start_step = start_step});
  }
  if (kind == "topk") {
    std::optional<double> fraction = parse_fraction(argument);
    if (!has_argument || !fraction || !(*fraction > 0 && *fraction <= 1)) {
      fail("make_gradient_compression: expected a fraction 0 < F <= 1 after \"topk:\", got \"", spec, "\"; ",
           kAcceptedForms);
    }
    return std::make_shared<TopKCompression>(TopKOptions{.fraction = *fraction, .start_step = start_step});
  }
  fail("make_gradient_compression: unknown compression \"", spec, "\"; ", kAcceptedForms);
}

}  // namespace dtrain::dist
