// Gossip averaging (dist/model_averaging/gossip_averaging.h): one average() is the ring mix
// computed here by hand; the average of the parameters over ranks is preserved exactly; repeated
// averages of a fixed model reach consensus at the rate of the mixing matrix's second eigenvalue,
// which the test computes itself (power iteration on the matrix it builds from the definition);
// consensus_distance() equals its definition evaluated on the gathered parameters.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <numbers>
#include <vector>

#include "core/profiler.h"
#include "dist/model_averaging/model_averaging.h"
#include "tests/dist/ddp_test_support.h"
#include "tests/dist/test_model_averaging_support.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;

namespace {

using Matrix = std::vector<std::vector<double>>;

// A fixed model of 4 tensors (26 values).
std::shared_ptr<Module> make_model(DType dtype) {
  manual_seed(5);
  auto model = std::make_shared<Sequential>(
      std::vector<std::shared_ptr<Module>>{std::make_shared<Linear>(3, 4), std::make_shared<Linear>(4, 2)});
  model->to(dtype);
  return model;
}

// The D-PSGD ring's mixing matrix from its definition: w on the diagonal, the rest split evenly
// between the distinct neighbours r - 1 and r + 1 (mod n).
Matrix ring_mixing_matrix(int n, double self_weight) {
  Matrix mixing(n, std::vector<double>(n, 0.0));
  for (int r = 0; r < n; ++r) {
    std::vector<int> neighbours;
    for (int peer : {(r + n - 1) % n, (r + 1) % n}) {
      if (peer != r && std::find(neighbours.begin(), neighbours.end(), peer) == neighbours.end()) neighbours.push_back(peer);
    }
    mixing[r][r] = neighbours.empty() ? 1.0 : self_weight;
    for (int peer : neighbours) mixing[r][peer] += (1.0 - self_weight) / static_cast<double>(neighbours.size());
  }
  return mixing;
}

// mixing applied to every element: by_rank[r] <- sum over s of mixing[r][s] * by_rank[s].
std::vector<std::vector<double>> mix(const Matrix& mixing, const std::vector<std::vector<double>>& by_rank) {
  std::vector<std::vector<double>> mixed(by_rank.size(), std::vector<double>(by_rank.front().size(), 0.0));
  for (size_t r = 0; r < by_rank.size(); ++r) {
    for (size_t s = 0; s < by_rank.size(); ++s) {
      if (mixing[r][s] == 0.0) continue;
      for (size_t i = 0; i < mixed[r].size(); ++i) mixed[r][i] += mixing[r][s] * by_rank[s][i];
    }
  }
  return mixed;
}

// The largest |eigenvalue| of a symmetric matrix off the all-ones direction: power iteration on
// B = (W - J/n)^2, which is positive semi-definite with largest eigenvalue lambda_2^2.
double second_eigenvalue_modulus(const Matrix& mixing) {
  const size_t n = mixing.size();
  Matrix deflated = mixing;
  for (auto& row : deflated) {
    for (double& value : row) value -= 1.0 / static_cast<double>(n);
  }
  auto apply = [&](const std::vector<double>& v) {
    std::vector<double> result(n, 0.0);
    for (size_t r = 0; r < n; ++r) {
      for (size_t s = 0; s < n; ++s) result[r] += deflated[r][s] * v[s];
    }
    return result;
  };
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = 1.0 + 0.37 * static_cast<double>(i * i % 5);  // no eigenvector
  double eigenvalue = 0.0;
  for (int iteration = 0; iteration < 500; ++iteration) {
    std::vector<double> next = apply(apply(v));
    double norm = 0.0;
    double rayleigh = 0.0;
    for (size_t i = 0; i < n; ++i) {
      norm += next[i] * next[i];
      rayleigh += v[i] * next[i];
    }
    double v_norm = 0.0;
    for (double value : v) v_norm += value * value;
    eigenvalue = v_norm == 0.0 ? 0.0 : rayleigh / v_norm;
    if (norm == 0.0) return 0.0;
    for (size_t i = 0; i < n; ++i) v[i] = next[i] / std::sqrt(norm);
  }
  return std::sqrt(std::max(eigenvalue, 0.0));
}

// sqrt(mean over ranks of ||x_r - mean x||^2) from every rank's values.
double consensus_distance_of(const std::vector<std::vector<double>>& by_rank) {
  const size_t n = by_rank.size();
  double total = 0.0;
  for (size_t i = 0; i < by_rank.front().size(); ++i) {
    double mean = 0.0;
    for (const auto& values : by_rank) mean += values[i];
    mean /= static_cast<double>(n);
    for (const auto& values : by_rank) total += (values[i] - mean) * (values[i] - mean);
  }
  return std::sqrt(total / static_cast<double>(n));
}

// Small integers times 1/2, different on every rank: (7r + 3i) mod 11 - 5, halved.
std::vector<double> small_values(int rank, size_t count) {
  std::vector<double> values(count);
  for (size_t i = 0; i < count; ++i) values[i] = static_cast<double>((7 * rank + 3 * static_cast<int>(i)) % 11 - 5) / 2;
  return values;
}

}  // namespace

TEST_CASE("gossip: the ring neighbours and their weights", "[model-averaging]") {
  const int n = world().size();
  const int r = world().rank();
  auto model = make_model(kFloat32);
  GossipAveraging gossip(model->parameters(), nullptr, {.self_weight = 0.25});
  if (n == 1) {
    CHECK(gossip.neighbours().empty());
  } else if (n == 2) {
    CHECK(gossip.neighbours() == std::vector<int>{1 - r});
    CHECK(gossip.neighbour_weight() == 0.75);
  } else {
    CHECK(gossip.neighbours() == std::vector<int>{(r + n - 1) % n, (r + 1) % n});
    CHECK(gossip.neighbour_weight() == 0.375);
  }
  CHECK_THROWS_WITH(GossipAveraging(model->parameters(), nullptr, {.self_weight = 1.5}),
                    Catch::Contains("expected a self_weight in [0, 1] (the rest goes to the ring neighbours), got 1.5"));
  CHECK_THROWS_WITH(GossipAveraging(model->parameters(), nullptr, {.self_weight = -0.5}),
                    Catch::Contains("got -0.5"));
}

TEST_CASE("gossip: one average() is w x_r plus the neighbours' share of theirs, by hand", "[model-averaging]") {
  const int n = world().size();
  const int r = world().rank();
  for (double bucket_cap_mb : {25.0, 0.0}) {  // one bucket; a bucket per tensor
    auto model = make_model(kFloat32);
    const size_t count = flat_parameters(*model).size();
    set_parameters(*model, small_values(r, count));
    GossipAveraging gossip(model->parameters(), nullptr, {.self_weight = 0.5, .bucket_cap_mb = bucket_cap_mb});
    gossip.average();
    std::vector<double> expected = small_values(r, count);
    const std::vector<double> left = small_values((r + n - 1) % n, count);
    const std::vector<double> right = small_values((r + 1) % n, count);
    for (size_t i = 0; i < count; ++i) {
      if (n == 2) expected[i] = 0.5 * expected[i] + 0.5 * left[i];  // left and right are the one other rank
      if (n >= 3) expected[i] = 0.5 * expected[i] + 0.25 * left[i] + 0.25 * right[i];
    }
    // Exact: halves and quarters of small integers, all representable in float32.
    CHECK(flat_parameters(*model) == expected);
  }
}

TEST_CASE("gossip preserves the average of the parameters over ranks exactly", "[model-averaging]") {
  // Why exactly, in float32: the values start as small integers times 1/2 (|x| <= 5/2), the
  // weights are multiples of 1/8 (w = 1/2 with neighbours 1/4 or 1/2; w = 3/4 with neighbours 1/8
  // or 1/4). Each average() is a convex combination, so every value and every partial sum stays
  // within [-5/2, 5/2], and after t rounds every value is a multiple of 2^-(1 + 3t): at t = 6 that
  // is 2 + 19 = 21 significant bits, within float32's 24. Every product and sum is then exact, so
  // the ranks' float arithmetic is exact arithmetic, where a doubly stochastic W preserves the sum.
  const int n = world().size();
  const int r = world().rank();
  for (double self_weight : {0.5, 0.75}) {
    INFO("self_weight " << self_weight);
    auto model = make_model(kFloat32);
    const size_t count = flat_parameters(*model).size();
    set_parameters(*model, small_values(r, count));
    GossipAveraging gossip(model->parameters(), nullptr, {.self_weight = self_weight, .bucket_cap_mb = 0.0});
    const Matrix mixing = ring_mixing_matrix(n, self_weight);
    for (size_t row = 0; row < mixing.size(); ++row) {  // doubly stochastic
      double row_sum = 0.0;
      double column_sum = 0.0;
      for (size_t column = 0; column < mixing.size(); ++column) {
        row_sum += mixing[row][column];
        column_sum += mixing[column][row];
      }
      REQUIRE(row_sum == 1.0);
      REQUIRE(column_sum == 1.0);
    }
    std::vector<std::vector<double>> simulated;
    for (int rank = 0; rank < n; ++rank) simulated.push_back(small_values(rank, count));
    std::vector<double> initial_sum(count, 0.0);
    for (const auto& values : simulated) {
      for (size_t i = 0; i < count; ++i) initial_sum[i] += values[i];
    }
    for (int round = 1; round <= 6; ++round) {
      INFO("round " << round);
      gossip.average();
      simulated = mix(mixing, simulated);
      std::vector<std::vector<double>> by_rank = gather_values(flat_parameters(*model));
      CHECK(by_rank == simulated);
      std::vector<double> sum(count, 0.0);
      for (const auto& values : by_rank) {
        for (size_t i = 0; i < count; ++i) sum[i] += values[i];
      }
      CHECK(sum == initial_sum);
    }
    // Still apart after 6 rounds, so the rounds did real work (except n = 2 with w = 1/2, which
    // reaches the mean in one exchange).
    if (n >= 3 || (n == 2 && self_weight != 0.5)) CHECK(consensus_distance_of(simulated) > 0.0);
  }
}

TEST_CASE("gossip: consensus_distance() is sqrt(mean over ranks of ||x_r - mean x||^2)", "[model-averaging]") {
  const int r = world().rank();
  auto model = make_model(kFloat32);
  const size_t count = flat_parameters(*model).size();
  Generator generator(70 + static_cast<uint64_t>(r));
  std::vector<double> values = randn({static_cast<int64_t>(count)}, {.dtype = kFloat32}, &generator).to(kFloat64).to_vector<double>();
  set_parameters(*model, values);
  GossipAveraging gossip(model->parameters(), nullptr, {.bucket_cap_mb = 0.0});
  const double expected = consensus_distance_of(gather_values(values));
  const double distance = gossip.consensus_distance();
  INFO("distance " << distance << ", expected " << expected);
  if (world().size() == 1) {
    CHECK(distance == 0.0);
  } else {
    CHECK(std::abs(distance - expected) <= 1e-12 * expected);
  }
}

TEST_CASE("gossip on a fixed model reaches consensus at the rate of the ring's second eigenvalue",
          "[model-averaging]") {
  const int n = world().size();
  const int r = world().rank();
  for (double self_weight : {0.5, 0.6}) {
    INFO("self_weight " << self_weight);
    auto model = make_model(kFloat32);
    const size_t count = flat_parameters(*model).size();
    Generator generator(90 + static_cast<uint64_t>(r));
    set_parameters(*model, randn({static_cast<int64_t>(count)}, {.dtype = kFloat32}, &generator).to_vector<double>());
    GossipAveraging gossip(model->parameters(), nullptr, {.self_weight = self_weight});
    const std::vector<double> initial_average = [&] {
      std::vector<std::vector<double>> by_rank = gather_values(flat_parameters(*model));
      std::vector<double> mean(count, 0.0);
      for (const auto& values : by_rank) {
        for (size_t i = 0; i < count; ++i) mean[i] += values[i] / n;
      }
      return mean;
    }();

    // lambda_2 of the ring, computed here; the closed form w + (1 - w) cos(2 pi k / n) checks it.
    const double lambda = second_eigenvalue_modulus(ring_mixing_matrix(n, self_weight));
    if (n >= 3) {
      double closed_form = 0.0;
      for (int k = 1; k < n; ++k) {
        closed_form = std::max(closed_form, std::abs(self_weight + (1 - self_weight) * std::cos(2 * std::numbers::pi * k / n)));
      }
      CHECK(std::abs(lambda - closed_form) <= 1e-9);
    }

    std::vector<double> distances = {gossip.consensus_distance()};
    if (n == 1) {
      CHECK(distances[0] == 0.0);
      continue;
    }
    REQUIRE(distances[0] > 0.5);
    while (distances.back() >= 1e-6 && distances.size() < 200) {
      gossip.average();
      distances.push_back(gossip.consensus_distance());
    }
    const size_t averages = distances.size() - 1;
    INFO("lambda_2 " << lambda << ", " << averages << " averages, distances from " << distances.front() << " to "
                     << distances.back());
    CHECK(distances.back() < 1e-6);
    // Each average shrinks the deviation by at most lambda_2 (W is symmetric); where float32's
    // rounding (~1e-7 of values ~1) is still far below the distance, by lambda_2 itself once the
    // smaller eigenvalues' share has died out (at once for n = 3 and n = 4 with w = 1/2).
    double last_ratio = -1.0;
    for (size_t t = 0; t + 1 < distances.size(); ++t) {
      if (distances[t + 1] < 1e-4) break;
      const double ratio = distances[t + 1] / distances[t];
      INFO("average " << t + 1 << ": ratio " << ratio);
      CHECK(ratio <= lambda * 1.01);
      last_ratio = ratio;
    }
    if (lambda > 1e-3) {
      CHECK(std::abs(last_ratio - lambda) <= 0.05 * lambda);
      // No more averages than lambda_2 predicts from the first distance.
      const double predicted = std::ceil(std::log(1e-6 / distances.front()) / std::log(lambda));
      CHECK(static_cast<double>(averages) <= predicted + 1);
    } else {
      CHECK(averages == 1);  // n = 2, w = 1/2: both ranks hold the mean after one exchange
    }
    // Consensus on the average the ranks started from (preserved, up to float32 rounding).
    std::vector<double> final_values = flat_parameters(*model);
    CHECK(relative_difference(final_values, initial_average) <= 1e-5);
  }
}

TEST_CASE("gossip: one send_receive per flat bucket per average(), carrying the bucket to each neighbour",
          "[model-averaging]") {
  const int n = world().size();
  for (double bucket_cap_mb : {25.0, 0.0}) {
    auto model = make_model(kFloat32);
    const int64_t parameter_bytes = static_cast<int64_t>(flat_parameters(*model).size()) * 4;
    GossipAveraging gossip(model->parameters(), nullptr, {.bucket_cap_mb = bucket_cap_mb});
    profiler::Profile profile;
    gossip.average();
    profile.stop();
    int64_t exchanges = 0;
    int64_t sent_bytes = 0;
    for (const profiler::Event& event : profile.events()) {
      if (event.kind != profiler::EventKind::Collective || event.name != "send_receive") continue;
      ++exchanges;
      sent_bytes += event.bytes;
    }
    INFO("bucket_cap_mb " << bucket_cap_mb);
    // The model's 4 tensors: one bucket under a 25 MiB cap, one each with a cap of 0; a ring of
    // one exchanges nothing.
    CHECK(exchanges == (n == 1 ? 0 : bucket_cap_mb > 0 ? 1 : 4));
    CHECK(sent_bytes == (n == 1 ? 0 : parameter_bytes * std::min(n - 1, 2)));
  }
}
