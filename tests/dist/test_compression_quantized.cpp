// int8 and 1-bit compression (dist/compression/quantized_compression.h) on synthetic buckets whose
// every rank's values each rank computes itself: exact on representable values, the error-feedback
// invariant (bitwise for int8, one rounding for 1-bit), a 1-bit case worked by hand, and chunks
// holding infinities.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "tests/dist/test_compression_support.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;

namespace {

// The smallest power of two s with max|x| <= 127 s, found by walking the exponents (the header's
// definition, computed another way than the implementation's frexp).
double int8_scale(const std::vector<float>& chunk) {
  double largest = 0;
  for (float value : chunk) largest = std::max(largest, std::abs(static_cast<double>(value)));
  if (largest == 0) return 1;
  int exponent = -200;
  while (127.0 * std::ldexp(1.0, exponent) < largest) ++exponent;
  return std::ldexp(1.0, exponent);
}

// What a rank sends for x, chunk by chunk, computed here from the definitions.
std::vector<float> int8_sent(const std::vector<float>& x, size_t chunk) {
  std::vector<float> sent(x.size());
  for (size_t begin = 0; begin < x.size(); begin += chunk) {
    size_t end = std::min(x.size(), begin + chunk);
    double scale = int8_scale(std::vector<float>(x.begin() + begin, x.begin() + end));
    for (size_t i = begin; i < end; ++i) {
      double quantized = std::nearbyint(x[i] / scale);
      REQUIRE(std::abs(quantized) <= 127);
      sent[i] = static_cast<float>(quantized * scale);
    }
  }
  return sent;
}

std::vector<float> sign_sent(const std::vector<float>& x, size_t chunk) {
  std::vector<float> sent(x.size());
  for (size_t begin = 0; begin < x.size(); begin += chunk) {
    size_t end = std::min(x.size(), begin + chunk);
    double total = 0;
    for (size_t i = begin; i < end; ++i) total += std::abs(static_cast<double>(x[i]));
    auto scale = static_cast<float>(total / static_cast<double>(end - begin));
    for (size_t i = begin; i < end; ++i) sent[i] = x[i] < 0 ? -scale : scale;
  }
  return sent;
}

// Every rank's sent values summed in rank order in float, then divided by the group size: what
// every rank must get, bitwise.
template <typename Sent>
std::vector<float> expected_average(int64_t elements, int64_t step, Sent sent_of) {
  std::vector<float> sum(static_cast<size_t>(elements), 0.0f);
  for (int rank = 0; rank < world().size(); ++rank) {
    std::vector<float> sent = sent_of(rank_gradient(elements, kFloat32, rank, step).to_vector<float>());
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += sent[i];
  }
  for (float& value : sum) value /= static_cast<float>(world().size());
  return sum;
}

}  // namespace

// Values that are multiples q s (|q| <= 127, and some |q| >= 64 so that s is the chunk's scale)
// are sent as they are; the sums of such values over ranks are exact in float, so the result is
// the exact all-reduce's bitwise and the residual is zero.
TEST_CASE("int8 on values exactly representable at the chunk's scale equals the exact all-reduce", "[compression]") {
  auto compression = std::make_shared<QuantizedCompression>(QuantizedOptions{.bits = 8, .chunk_elements = 4});
  const int rank = world().rank();
  // Three chunks of 4 at scales 2^-3, 2^0, 2^5; the last chunk is 2 values long.
  std::vector<float> values = {
      127 * 0.125f, -3 * 0.125f, 0.0f,       (5 + rank) * 0.125f,
      -100.0f,      64.0f,       -(1 + rank) * 1.0f, 17.0f,
      -127 * 32.0f, (2 + rank) * 32.0f};
  HookBucket bucket = make_bucket({{10}}, kFloat32);
  HookBucket reference = make_bucket({{10}}, kFloat32);
  reduce_bucket(as_hook(compression), bucket, from_vector(values));
  reduce_bucket(allreduce_hook, reference, from_vector(values));
  CHECK(bucket.buffer.to_vector<float>() == reference.buffer.to_vector<float>());
  CHECK(compression->residual(0).to_vector<float>() == std::vector<float>(10, 0.0f));
  // 3 scales and 10 bytes in 3 words: 24 bytes instead of 40.
  CHECK(compression->payload_bytes_last_step() == 24);
}

// sent + residual == compensated holds exactly: the residual is x - q s with s a power of two.
// The sent values and the average are recomputed here from the definitions; the residual carries
// over into the next step's compensated input.
TEST_CASE("int8 error feedback: sent + residual == compensated, bitwise", "[compression]") {
  constexpr int64_t kElements = 1000;
  constexpr size_t kChunk = 64;
  auto compression = std::make_shared<QuantizedCompression>(QuantizedOptions{.bits = 8, .chunk_elements = kChunk});
  CommunicationHook hook = as_hook(compression);
  HookBucket bucket = make_bucket({{kElements}}, kFloat32);
  std::vector<float> compensated = rank_gradient(kElements, kFloat32, world().rank(), 0).to_vector<float>();
  reduce_bucket(hook, bucket, from_vector(compensated));
  std::vector<float> sent = int8_sent(compensated, kChunk);
  std::vector<float> residual = compression->residual(0).to_vector<float>();
  bool any_residual = false;
  for (size_t i = 0; i < sent.size(); ++i) {
    INFO("element " << i << ": compensated " << compensated[i] << ", sent " << sent[i] << ", residual " << residual[i]);
    // In double, where sums of two floats of these sizes are exact.
    REQUIRE(static_cast<double>(sent[i]) + static_cast<double>(residual[i]) == static_cast<double>(compensated[i]));
    any_residual = any_residual || residual[i] != 0;
  }
  CHECK(any_residual);
  CHECK(bucket.buffer.to_vector<float>() ==
        expected_average(kElements, 0, [](const std::vector<float>& x) { return int8_sent(x, kChunk); }));

  // The next step compensates with that residual.
  std::vector<float> next = rank_gradient(kElements, kFloat32, world().rank(), 1).to_vector<float>();
  reduce_bucket(hook, bucket, from_vector(next));
  for (size_t i = 0; i < next.size(); ++i) next[i] += residual[i];
  std::vector<float> next_sent = int8_sent(next, kChunk);
  std::vector<float> next_residual = compression->residual(0).to_vector<float>();
  for (size_t i = 0; i < next.size(); ++i) {
    REQUIRE(static_cast<double>(next_sent[i]) + static_cast<double>(next_residual[i]) == static_cast<double>(next[i]));
  }
}

// Rank r holds (r + 1) times base, in chunks of 4. Chunk 1: mean |.| = 6.5 / 4 = 1.625; chunk 2:
// 6 / 4 = 1.5 (zero counts as positive). Rank r sends (r + 1) * the signed scales; their average
// over N ranks is rank 0's times (N + 1) / 2. Residuals: base - sent. A second step with zero
// gradients sends the residuals' signs at scales 3.5 / 4 = 0.875 and 5.5 / 4 = 1.375.
TEST_CASE("1-bit compression on a case worked by hand, two steps", "[compression]") {
  auto compression = std::make_shared<QuantizedCompression>(QuantizedOptions{.bits = 1, .chunk_elements = 4});
  CommunicationHook hook = as_hook(compression);
  const float factor = static_cast<float>(world().rank() + 1);
  const float average_factor = static_cast<float>(world().size() + 1) / 2;
  auto times = [](std::vector<float> values, float by) {
    for (float& value : values) value *= by;
    return values;
  };
  std::vector<float> base = {1, -3, 2, 0.5f, -0.25f, 0, 4, -1.75f};
  HookBucket bucket = make_bucket({{2, 4}}, kFloat32);

  reduce_bucket(hook, bucket, from_vector(times(base, factor)));
  CHECK(bucket.buffer.to_vector<float>() ==
        times({1.625f, -1.625f, 1.625f, 1.625f, -1.5f, 1.5f, 1.5f, -1.5f}, average_factor));
  CHECK(compression->residual(0).to_vector<float>() ==
        times({-0.625f, -1.375f, 0.375f, -1.125f, 1.25f, -1.5f, 2.5f, -0.25f}, factor));
  // 2 scales and 8 sign bits in one word.
  CHECK(compression->payload_bytes_last_step() == 12);

  reduce_bucket(hook, bucket, zeros({8}));
  CHECK(bucket.buffer.to_vector<float>() ==
        times({-0.875f, -0.875f, 0.875f, -0.875f, 1.375f, -1.375f, 1.375f, -1.375f}, average_factor));
  CHECK(compression->residual(0).to_vector<float>() ==
        times({0.25f, -0.5f, -0.5f, -0.25f, -0.125f, -0.125f, 1.125f, 1.125f}, factor));
}

// The residual is x - s sign(x), rounded once: |sent + residual - compensated| <= 2^-24 |x - sent|
// (float32's unit roundoff). The average is recomputed here from the definition, bitwise.
TEST_CASE("1-bit error feedback: sent + residual == compensated to one rounding", "[compression]") {
  constexpr int64_t kElements = 1000;
  constexpr size_t kChunk = 100;
  auto compression = std::make_shared<QuantizedCompression>(QuantizedOptions{.bits = 1, .chunk_elements = kChunk});
  HookBucket bucket = make_bucket({{kElements}}, kFloat32);
  std::vector<float> compensated = rank_gradient(kElements, kFloat32, world().rank(), 0).to_vector<float>();
  reduce_bucket(as_hook(compression), bucket, from_vector(compensated));
  std::vector<float> sent = sign_sent(compensated, kChunk);
  std::vector<float> residual = compression->residual(0).to_vector<float>();
  for (size_t i = 0; i < sent.size(); ++i) {
    double x = compensated[i];
    double error = std::abs(static_cast<double>(sent[i]) + residual[i] - x);
    REQUIRE(error <= std::ldexp(1.0, -24) * std::abs(x - sent[i]));
  }
  CHECK(bucket.buffer.to_vector<float>() ==
        expected_average(kElements, 0, [](const std::vector<float>& x) { return sign_sent(x, kChunk); }));
}

// An overflowed gradient on rank 0 (an fp16 loss scale too large) turns its chunk into NaN on
// every rank, so a loss scaler skips the step, and rank 0 keeps that chunk's old residual (zero).
TEST_CASE("Quantized compression: a chunk holding an infinity comes out NaN on every rank", "[compression]") {
  for (int bits : {8, 1}) {
    INFO("bits " << bits);
    auto compression = std::make_shared<QuantizedCompression>(QuantizedOptions{.bits = bits, .chunk_elements = 4});
    std::vector<float> values = {0.5f, -1.25f, 3.0f, 0.75f, 1.5f, -2.0f, 0.25f, 1.0f};
    if (world().rank() == 0) values[5] = std::numeric_limits<float>::infinity();
    HookBucket bucket = make_bucket({{8}}, kFloat32);
    reduce_bucket(as_hook(compression), bucket, from_vector(values));
    std::vector<float> result = bucket.buffer.to_vector<float>();
    for (size_t i = 0; i < 4; ++i) CHECK(std::isfinite(result[i]));
    for (size_t i = 4; i < 8; ++i) CHECK(std::isnan(result[i]));
    std::vector<float> residual = compression->residual(0).to_vector<float>();
    if (world().rank() == 0) {
      for (size_t i = 4; i < 8; ++i) CHECK(residual[i] == 0.0f);
    }
  }
}
