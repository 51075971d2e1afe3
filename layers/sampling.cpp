#include "layers/sampling.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <utility>

#include "core/error.h"
#include "core/ops/factory.h"

namespace dtrain {

int64_t sample_token(const std::vector<float>& logits, const SamplingOptions& options, Generator& generator) {
  if (logits.empty()) fail("sample_token: expected at least one logit, got none");
  if (!(options.temperature >= 0)) fail("sample_token: expected a temperature >= 0, got ", options.temperature);
  if (options.top_k < 0) fail("sample_token: expected top_k >= 0, got ", options.top_k);
  std::vector<int64_t> order(logits.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  // Stable, so equal logits keep index order and the draw does not depend on the sort's whims.
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return logits[a] > logits[b]; });
  // Drawn even at temperature 0, so that the generator's position does not depend on it.
  double u = rand({1}, {.dtype = kFloat64}, &generator).item();
  if (options.temperature == 0) return order[0];
  size_t keep = options.top_k > 0 ? std::min(order.size(), static_cast<size_t>(options.top_k)) : order.size();
  std::vector<double> weights(keep);
  double total = 0;
  for (size_t i = 0; i < keep; ++i) {
    // Relative to the largest logit, so exp never overflows.
    weights[i] = std::exp((logits[order[i]] - logits[order[0]]) / options.temperature);
    total += weights[i];
  }
  double remaining = u * total;
  for (size_t i = 0; i < keep; ++i) {
    if ((remaining -= weights[i]) < 0) return order[i];
  }
  return order[keep - 1];  // u * total rounded up to the sum
}

std::vector<int64_t> generate_tokens(const std::function<Tensor(const Tensor&)>& logits_of, std::vector<int64_t> prompt,
                                     int64_t count, int64_t context, const SamplingOptions& options,
                                     Generator& generator, Device device) {
  if (prompt.empty()) fail("generate_tokens: expected a prompt of at least one token, got none");
  if (context < 1) fail("generate_tokens: expected a context >= 1, got ", context);
  std::vector<int64_t> tokens = std::move(prompt);
  for (int64_t i = 0; i < count; ++i) {
    auto window_length = std::min(static_cast<int64_t>(tokens.size()), context);
    std::vector<int64_t> window(tokens.end() - window_length, tokens.end());
    Tensor logits = logits_of(from_vector(window, {1, window_length}).to(device));
    if (logits.dim() != 3 || logits.size(0) != 1 || logits.size(1) != window_length) {
      fail("generate_tokens: expected logits [1, ", window_length, ", vocabulary], got ", logits.shape());
    }
    Tensor last = logits.select(1, window_length - 1).reshape({logits.size(2)}).to(Device::cpu()).to(kFloat32);
    tokens.push_back(sample_token(last.to_vector<float>(), options, generator));
  }
  return tokens;
}

}  // namespace dtrain
