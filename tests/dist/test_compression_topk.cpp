// Top-k compression (dist/compression/topk_compression.h) on synthetic buckets whose every rank's
// values each rank computes itself: k = all equals the exact all-reduce, the kept set and the
// error-feedback invariant (bitwise), and the bytes sent.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <numeric>
#include <vector>

#include "tests/dist/test_compression_support.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;

namespace {

// The k indices of largest |x|, ties to the lower index: by a full stable sort, another way than
// the implementation's selection.
std::vector<size_t> largest(const std::vector<float>& x, size_t k) {
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return std::abs(x[a]) > std::abs(x[b]); });
  order.resize(k);
  return order;
}

}  // namespace

// Quarter-integers: every sum over ranks is exact, so the rank-order sum and the all-reduce's agree
// bitwise. Random values then agree to the rounding of a sum of N terms.
TEST_CASE("Top-k with fraction 1 (k = all) equals the exact all-reduce", "[compression]") {
  auto compression = std::make_shared<TopKCompression>(TopKOptions{.fraction = 1.0});
  CHECK(compression->name() == "top-100%");
  std::vector<float> values(37);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>((static_cast<int>(i) * 7 + world().rank() * 3) % 23 - 11) / 4;
  HookBucket bucket = make_bucket({{37}}, kFloat32);
  HookBucket reference = make_bucket({{37}}, kFloat32);
  reduce_bucket(as_hook(compression), bucket, from_vector(values));
  reduce_bucket(allreduce_hook, reference, from_vector(values));
  CHECK(bucket.buffer.to_vector<float>() == reference.buffer.to_vector<float>());
  CHECK(compression->residual(0).to_vector<float>() == std::vector<float>(37, 0.0f));

  Tensor random = rank_gradient(500, kFloat32, world().rank(), 0);
  HookBucket large = make_bucket({{500}}, kFloat32, 1);
  reduce_bucket(as_hook(compression), large, random);
  std::vector<double> exact = exact_mean(500, kFloat32, 0);
  std::vector<double> result = large.buffer.to_vector<double>();
  for (size_t i = 0; i < exact.size(); ++i) {
    // N - 1 additions and one division, each within u = 2^-24 of values at most N max|x| (< 8 N).
    CHECK(std::abs(result[i] - exact[i]) <= world().size() * std::ldexp(1.0, -24) * 8 * world().size());
  }
}

// k = ceil(0.25 * 10) = 3: the residual is the compensated gradient with the kept values zeroed,
// sent + residual == compensated exactly, and the result is every rank's kept values scattered,
// summed in rank order and divided by N. The second step compensates with the first's residual.
TEST_CASE("Top-k error feedback: kept values sent, the rest kept back exactly", "[compression]") {
  constexpr size_t kElements = 10;
  auto compression = std::make_shared<TopKCompression>(TopKOptions{.fraction = 0.25});
  CHECK(compression->kept_count(kElements) == 3);
  CHECK(compression->name() == "top-25%");
  CommunicationHook hook = as_hook(compression);
  HookBucket bucket = make_bucket({{2, 5}}, kFloat32);
  std::vector<float> residual(kElements, 0.0f);
  std::vector<std::vector<float>> previous_residuals(world().size(), std::vector<float>(kElements, 0.0f));
  for (int64_t step = 0; step < 2; ++step) {
    INFO("step " << step);
    reduce_bucket(hook, bucket, rank_gradient(kElements, kFloat32, world().rank(), step));
    std::vector<float> sum(kElements, 0.0f);
    for (int rank = 0; rank < world().size(); ++rank) {
      std::vector<float> compensated = rank_gradient(kElements, kFloat32, rank, step).to_vector<float>();
      for (size_t i = 0; i < kElements; ++i) compensated[i] += previous_residuals[rank][i];
      std::vector<float> expected_residual = compensated;
      for (size_t i : largest(compensated, 3)) {
        sum[i] += compensated[i];
        expected_residual[i] = 0;
      }
      previous_residuals[rank] = expected_residual;
    }
    for (float& value : sum) value /= static_cast<float>(world().size());
    CHECK(bucket.buffer.to_vector<float>() == sum);
    CHECK(compression->residual(0).to_vector<float>() == previous_residuals[world().rank()]);
  }
  // 3 Int32 indices and 3 float32 values.
  CHECK(compression->payload_bytes_last_step() == 24);
}
