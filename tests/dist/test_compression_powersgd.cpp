// PowerSGD (dist/compression/powersgd_compression.h) on synthetic buckets whose every rank's
// values each rank computes itself: exact at full rank, its error-feedback invariant, the exact
// all-reduce before start_step, and the bytes it hands to collectives.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "tests/dist/test_compression_support.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;

namespace {

// Three matrices (one of 3 dimensions) and a bias: the bias goes uncompressed.
const std::vector<Shape> kShapes = {{8, 5}, {5}, {3, 7}, {4, 4, 2}};
constexpr int64_t kElements = 40 + 5 + 21 + 32;

double largest_magnitude(const std::vector<double>& values) {
  double largest = 0;
  for (double value : values) largest = std::max(largest, std::abs(value));
  return largest;
}

double largest_difference(const std::vector<double>& a, const std::vector<double>& b) {
  double largest = 0;
  for (size_t i = 0; i < a.size(); ++i) largest = std::max(largest, std::abs(a[i] - b[i]));
  return largest;
}

}  // namespace

// At rank >= min(rows, cols) P's columns span the column space of the summed matrix, so P P^T M
// is M: the result is the exact average up to rounding. The bound, 2000 u max|average| (u the
// unit roundoff), covers the orthogonality that Gram-Schmidt loses, O(kappa(P) u) with kappa of
// these small Gaussian matrices around 10, times the matrix products' sums of at most 16 terms;
// it is 1e-4 relative in float32 and 4e-13 in float64, far below the rank-1 error checked last.
// The residuals' sum over ranks is zero up to rounding, so it holds at every step, not only the
// first.
TEST_CASE("PowerSGD with rank >= min(rows, cols) equals the exact average to rounding", "[compression]") {
  for (DType dtype : {kFloat64, kFloat32}) {
    const double unit_roundoff = dtype == kFloat64 ? std::ldexp(1.0, -53) : std::ldexp(1.0, -24);
    auto compression = std::make_shared<PowerSgdCompression>(
        PowerSgdOptions{.rank = 8, .min_compression_rate = 0.0, .seed = 3});
    CommunicationHook hook = as_hook(compression);
    HookBucket bucket = make_bucket(kShapes, dtype);
    for (int64_t step = 0; step < 3; ++step) {
      INFO("dtype " << dtype << ", step " << step);
      reduce_bucket(hook, bucket, rank_gradient(kElements, dtype, world().rank(), step));
      CHECK(compression->compressed_matrix_count(0) == 3);
      std::vector<double> exact = exact_mean(kElements, dtype, step);
      double difference = largest_difference(bucket.buffer.to_vector<double>(), exact);
      CHECK(difference <= 2000 * unit_roundoff * largest_magnitude(exact));
    }
  }
  // The same bucket at rank 1 is far from exact: the check above can fail.
  auto low_rank = std::make_shared<PowerSgdCompression>(PowerSgdOptions{.rank = 1, .min_compression_rate = 0.0});
  HookBucket bucket = make_bucket(kShapes, kFloat64);
  reduce_bucket(as_hook(low_rank), bucket, rank_gradient(kElements, kFloat64, world().rank(), 0));
  std::vector<double> exact = exact_mean(kElements, kFloat64, 0);
  CHECK(largest_difference(bucket.buffer.to_vector<double>(), exact) > 0.01 * largest_magnitude(exact));
}

// Each rank's contribution is sent_r = P Q_r^T and the result their average, so the average over
// ranks of (compensated_r - residual_r) must be the result. The residual is one rounded
// subtraction per element and the result rounds in the products and the Q all-reduce: in float64
// the two sides agree to 1e-12 of the largest value. Also: the bias (uncompressed) leaves no
// residual at all, and the residual carries over (the next step's compensated input includes it).
TEST_CASE("PowerSGD error feedback: the average of compensated minus residual is the result", "[compression]") {
  auto compression = std::make_shared<PowerSgdCompression>(PowerSgdOptions{.rank = 1, .min_compression_rate = 0.0});
  CommunicationHook hook = as_hook(compression);
  HookBucket bucket = make_bucket(kShapes, kFloat64);
  std::vector<double> residual(kElements, 0.0);
  for (int64_t step = 0; step < 3; ++step) {
    INFO("step " << step);
    std::vector<double> compensated = rank_gradient(kElements, kFloat64, world().rank(), step).to_vector<double>();
    for (size_t i = 0; i < compensated.size(); ++i) compensated[i] += residual[i];
    reduce_bucket(hook, bucket, rank_gradient(kElements, kFloat64, world().rank(), step));
    residual = compression->residual(0).to_vector<double>();
    std::vector<double> sent(kElements);
    for (size_t i = 0; i < sent.size(); ++i) sent[i] = compensated[i] - residual[i];
    Tensor all_sent = empty({kElements * world().size()}, {.dtype = kFloat64});
    world().all_gather(from_vector(sent), all_sent)->wait();
    std::vector<double> gathered = all_sent.to_vector<double>();
    std::vector<double> mean_sent(kElements, 0.0);
    for (int rank = 0; rank < world().size(); ++rank) {
      for (int64_t i = 0; i < kElements; ++i) mean_sent[i] += gathered[rank * kElements + i] / world().size();
    }
    std::vector<double> result = bucket.buffer.to_vector<double>();
    CHECK(largest_difference(result, mean_sent) <= 1e-12 * largest_magnitude(result));
    for (int64_t i = 40; i < 45; ++i) CHECK(residual[i] == 0.0);  // the bias
    CHECK(largest_magnitude(residual) > 0);  // rank 1 of these matrices leaves something out
  }
}

TEST_CASE("PowerSGD before start_step is the exact all-reduce, bitwise", "[compression]") {
  auto compression = std::make_shared<PowerSgdCompression>(PowerSgdOptions{.rank = 1, .start_step = 2});
  CommunicationHook hook = as_hook(compression);
  // Two buckets a step: only the last one counts the step.
  HookBucket first = make_bucket({{8, 5}, {5}}, kFloat32, 0, false);
  HookBucket last = make_bucket({{3, 7}, {4, 4, 2}}, kFloat32, 1, true);
  HookBucket reference = make_bucket({{8, 5}, {5}}, kFloat32, 0, false);
  for (int64_t step = 0; step < 3; ++step) {
    INFO("step " << step);
    Tensor values = rank_gradient(45, kFloat32, world().rank(), step);
    reduce_bucket(hook, first, values);
    reduce_bucket(allreduce_hook, reference, values);
    reduce_bucket(hook, last, rank_gradient(53, kFloat32, world().rank(), step));
    bool bitwise_equal = first.buffer.to_vector<float>() == reference.buffer.to_vector<float>();
    CHECK(bitwise_equal == (step < 2));
    CHECK(compression->steps() == step + 1);
  }
}

// PyTorch's rule keeps a matrix whole unless (n + m) r * min_compression_rate < n m. At rank 1 and
// rate 2 all three matrices compress; each bucket sends the P's and the bias in one all-reduce and
// the Q's in a second: (8 + 3 + 4 + 5) + (5 + 7 + 8) float64 values.
TEST_CASE("PowerSGD sends the packed P's with the bias, then the packed Q's", "[compression]") {
  auto compression = std::make_shared<PowerSgdCompression>(PowerSgdOptions{.rank = 1});
  HookBucket bucket = make_bucket(kShapes, kFloat64);
  reduce_bucket(as_hook(compression), bucket, rank_gradient(kElements, kFloat64, world().rank(), 0));
  CHECK(compression->compressed_matrix_count(0) == 3);
  CHECK(compression->payload_bytes_last_step() == (20 + 20) * 8);
  // At rank 4, [3, 7] would send (3 + 7) * 3 = 30 values for 21 and [8, 5] 52 for 40: both go whole.
  auto higher = std::make_shared<PowerSgdCompression>(PowerSgdOptions{.rank = 4});
  reduce_bucket(as_hook(higher), bucket, rank_gradient(kElements, kFloat64, world().rank(), 0));
  CHECK(higher->compressed_matrix_count(0) == 0);
  CHECK(higher->payload_bytes_last_step() == kElements * 8);
}
