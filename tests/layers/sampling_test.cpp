// Sampling tokens from logits and continuing a prompt through a forward function.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <vector>

#include "dtrain.h"

using namespace dtrain;
using Catch::Contains;

namespace {

// The uniform number sample_token draws next from a generator at this position.
double next_uniform(const Generator& generator) {
  Generator copy = generator;
  return rand({1}, {.dtype = kFloat64}, &copy).item();
}

// Logits [1, T, vocabulary] that make (last token + 1) mod vocabulary by far the likeliest, and
// record the longest window seen.
struct CountingModel {
  int64_t vocabulary;
  int64_t longest_window = 0;
  Tensor operator()(const Tensor& tokens) {
    std::vector<int64_t> values = tokens.to_vector<int64_t>();
    longest_window = std::max(longest_window, tokens.size(1));
    std::vector<float> logits(static_cast<size_t>(tokens.size(1) * vocabulary), 0.0f);
    for (int64_t t = 0; t < tokens.size(1); ++t) {
      logits[static_cast<size_t>(t * vocabulary + (values[static_cast<size_t>(t)] + 1) % vocabulary)] = 30.0f;
    }
    return from_vector(logits, {1, tokens.size(1), vocabulary});
  }
};

}  // namespace

TEST_CASE("sampling: temperature 0 and top-k 1 take the likeliest token, ties to the lower index") {
  Generator generator(7);
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f};
  CHECK(sample_token(logits, {.temperature = 0}, generator) == 1);
  CHECK(sample_token(logits, {.temperature = 5.0, .top_k = 1}, generator) == 1);
}

TEST_CASE("sampling: a draw is the inverse CDF of softmax(logits / temperature) at the generator's number") {
  // Probabilities 1/4 and 3/4 (logits 0 and ln 3), sorted likeliest first: token 1 covers
  // [0, 0.75), token 0 the rest.
  const std::vector<float> logits = {0.0f, static_cast<float>(std::log(3.0))};
  for (uint64_t seed = 0; seed < 20; ++seed) {
    Generator generator(seed);
    double u = next_uniform(generator);
    CHECK(sample_token(logits, {.temperature = 1.0}, generator) == (u < 0.75 ? 1 : 0));
  }
  // Temperature 2 halves the logits: probabilities 1/(1+sqrt 3) and sqrt 3/(1+sqrt 3).
  const double likeliest = std::sqrt(3.0) / (1 + std::sqrt(3.0));
  for (uint64_t seed = 0; seed < 20; ++seed) {
    Generator generator(seed);
    double u = next_uniform(generator);
    CHECK(sample_token(logits, {.temperature = 2.0}, generator) == (u < likeliest ? 1 : 0));
  }
}

TEST_CASE("sampling: top-k never draws outside the k likeliest, and frequencies follow the probabilities") {
  Generator generator(3);
  // Sorted: token 2 (logit ln 3), token 0 (0), token 1 (-0.5); top-k 2 leaves 3/4 and 1/4.
  const std::vector<float> logits = {0.0f, -0.5f, static_cast<float>(std::log(3.0))};
  int draws = 4000, twos = 0;
  for (int i = 0; i < draws; ++i) {
    int64_t token = sample_token(logits, {.temperature = 1.0, .top_k = 2}, generator);
    REQUIRE(token != 1);
    twos += token == 2;
  }
  // Binomial(4000, 0.75): standard deviation 27, so +-120 is more than 4 of them.
  CHECK(std::abs(twos - 3000) < 120);
  REQUIRE_THROWS_WITH(sample_token({}, {}, generator), Contains("at least one logit"));
  REQUIRE_THROWS_WITH(sample_token(logits, {.temperature = -1}, generator), Contains("temperature >= 0, got -1"));
}

TEST_CASE("sampling: generate_tokens continues the prompt within the context, the same for the same seed") {
  CountingModel model{.vocabulary = 10};
  Generator generator(0);
  std::vector<int64_t> tokens = generate_tokens(std::ref(model), {7}, 6, 3, {.temperature = 1.0}, generator);
  CHECK(tokens == std::vector<int64_t>{7, 8, 9, 0, 1, 2, 3});
  CHECK(model.longest_window == 3);

  // Uniform logits over 50 tokens: the text is the generator's.
  auto uniform = [](const Tensor& t) { return zeros({1, t.size(1), 50}); };
  auto sample = [&](uint64_t seed) {
    Generator g(seed);
    return generate_tokens(uniform, {1, 2}, 20, 8, {.temperature = 1.0}, g);
  };
  CHECK(sample(11) == sample(11));
  CHECK(sample(11) != sample(12));
  CHECK(sample(11).size() == 22);
  Generator g(0);
  REQUIRE_THROWS_WITH(generate_tokens(uniform, {}, 1, 8, {}, g), Contains("a prompt of at least one token"));
}
