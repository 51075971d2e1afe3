#pragma once
// Sampling from a language model: one token from a row of logits (temperature, top-k), and a
// prompt continued token by token through any forward function (a Module, or DDP/ZeRO around
// one). The random draws come from the Generator passed in, one uniform number per token, on the
// CPU: for a seed, the same logits give the same tokens, so a model on a given device generates
// the same text every time.
//
//   Generator generator(seed);
//   std::vector<int64_t> text = generate_tokens([&](const Tensor& t) { return (*model)(t); },
//                                               prompt, 200, context, {.temperature = 0.8, .top_k = 40},
//                                               generator);
#include <cstdint>
#include <functional>
#include <vector>

#include "core/device.h"
#include "core/random.h"
#include "core/tensor.h"

namespace dtrain {

struct SamplingOptions {
  double temperature = 1.0;  // logits are divided by it; 0: always the likeliest token
  int64_t top_k = 0;         // draw among the k likeliest tokens; 0: among all
};

// One token index drawn from softmax(logits / temperature) restricted to the top_k likeliest
// (ties broken towards the lower index). Raises for empty logits or a negative option.
int64_t sample_token(const std::vector<float>& logits, const SamplingOptions& options, Generator& generator);

// prompt followed by count sampled tokens. logits_of maps int64 tokens [1, T] (on device) to
// logits [1, T, vocabulary]; it sees at most the last `context` tokens. Call it without autograd
// (NoGradGuard) and with the model in eval mode.
std::vector<int64_t> generate_tokens(const std::function<Tensor(const Tensor&)>& logits_of, std::vector<int64_t> prompt,
                                     int64_t count, int64_t context, const SamplingOptions& options,
                                     Generator& generator, Device device = Device::cpu());

}  // namespace dtrain
