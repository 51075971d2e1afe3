// The CUDA reductions' plan (cuda/kernels/reduce_plan.h) on the host: enough blocks for a 132-SM
// GPU at the GPT-2 bias-gradient shapes, every element combined exactly once, and an order of
// combining that is a function of the shape alone. The emulation below runs the plan's own lane
// loops (row_lane_total, column_lane_totals) as the kernels do, with the pieces handed out to host
// threads in whatever order they come.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <thread>
#include <utility>
#include <vector>

#include "core/cpu/lane_accumulator.h"
#include "cuda/kernels/reduce_plan.h"

using namespace dtrain;
using namespace dtrain::cuda;

namespace {

constexpr int64_t kH200Sms = 132;

using ValueAt = std::function<double(int64_t output, int64_t element)>;
using Sum = cpu::SumCombine;

// The emulation's values are already doubles: stored type and accumulator are one.
double as_double(double value) { return value; }

// Runs body(0), ..., body(count - 1) on `threads` host threads that take indices as they free up.
void run_pieces(int64_t count, int threads, const std::function<void(int64_t)>& body) {
  std::atomic<int64_t> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int64_t i = next++; i < count; i = next++) body(i);
    });
  }
  for (std::thread& thread : pool) thread.join();
}

// The warp's shuffle tree over 32 lane totals (lane l takes lane l + offset), lane 0's result.
double warp_tree(std::vector<double> lanes) {
  for (int offset = kWarpTreeFirstOffset; offset > 0; offset /= 2) {
    for (int lane = 0; lane + offset < kWarpSize; ++lane) lanes[lane] = lanes[lane] + lanes[lane + offset];
  }
  return lanes[0];
}

// Sums as the row kernels do: a warp per (output, chunk), then the partials' fold.
std::vector<double> emulate_rows(const ReducePlan& plan, const ValueAt& value, int threads) {
  std::vector<double> partials(static_cast<size_t>(plan.outputs * plan.chunks));
  run_pieces(plan.pieces(), threads, [&](int64_t piece) {
    const int64_t output = piece / plan.chunks, chunk = piece % plan.chunks;
    std::vector<double> lanes(kWarpSize);
    for (int lane = 0; lane < kWarpSize; ++lane) {
      auto load_group = [&](int64_t group, double (&values)[8]) {
        const int64_t first = group_element_begin(plan, group);
        const int count = static_cast<int>(group_element_end(plan, group) - first);
        for (int v = 0; v < count; ++v) values[v] = value(output, first + v);
        return count;
      };
      lanes[lane] = row_lane_total<8, double, Sum, kWarpSize, double>(plan, chunk, lane, load_group, as_double);
    }
    partials[output * plan.chunks + chunk] = warp_tree(lanes);
  });
  if (plan.chunks == 1) return partials;
  const ReducePlan fold = row_fold_plan(plan);
  std::vector<double> totals(static_cast<size_t>(plan.outputs));
  run_pieces(plan.outputs, threads, [&](int64_t output) {
    // A block per output: each thread's partials in order, each warp's tree, the warps in order.
    std::vector<double> warp_totals;
    for (int warp = 0; warp < kRowWarpsPerBlock; ++warp) {
      std::vector<double> lanes(kWarpSize);
      for (int lane = 0; lane < kWarpSize; ++lane) {
        auto load_partial = [&](int64_t chunk, double (&values)[1]) {
          values[0] = partials[output * plan.chunks + chunk];
          return 1;
        };
        lanes[lane] =
            row_lane_total<1, double, Sum, kReduceThreads, double>(fold, 0, warp * kWarpSize + lane, load_partial, as_double);
      }
      warp_totals.push_back(warp_tree(lanes));
    }
    double total = warp_totals[0];
    for (int warp = 1; warp < kRowWarpsPerBlock; ++warp) total = total + warp_totals[warp];
    totals[output] = total;
  });
  return totals;
}

// Sums as the column kernels do: a block per (tile, chunk), lanes folded in order, then chunks.
std::vector<double> emulate_columns(const ReducePlan& plan, const ValueAt& value, int threads) {
  std::vector<double> partials(static_cast<size_t>(plan.outputs * plan.chunks));
  run_pieces(plan.blocks_x * plan.chunks, threads, [&](int64_t block) {
    const int64_t tile = block / plan.chunks, chunk = block % plan.chunks;
    for (int x = 0; x < kWarpSize; ++x) {
      const int64_t group = tile * kWarpSize + x;
      if (group >= plan.groups) continue;
      const int64_t first = output_group_begin(plan, group), last = output_group_end(plan, group);
      double lane_totals[kColumnLanes][8];
      for (int lane = 0; lane < kColumnLanes; ++lane) {
        auto load_row = [&](int64_t row, double (&values)[8]) {
          for (int v = 0; v < 8; ++v) values[v] = first + v < last ? value(first + v, row) : 0.0;
        };
        column_lane_totals<8, double, Sum, double>(plan, chunk, lane, load_row, as_double, lane_totals[lane]);
      }
      for (int64_t output = first; output < last; ++output) {
        double total = lane_totals[0][output - first];
        for (int lane = 1; lane < kColumnLanes; ++lane) total = total + lane_totals[lane][output - first];
        partials[chunk * plan.outputs + output] = total;
      }
    }
  });
  std::vector<double> totals(static_cast<size_t>(plan.outputs));
  for (int64_t output = 0; output < plan.outputs; ++output) {
    double total = partials[output];
    for (int64_t chunk = 1; chunk < plan.chunks; ++chunk) total = total + partials[chunk * plan.outputs + output];
    totals[output] = total;
  }
  return totals;
}

std::vector<double> emulate(const ReducePlan& plan, const ValueAt& value, int threads) {
  REQUIRE(plan.vector <= 8);
  return plan.walk == ReduceWalk::Rows ? emulate_rows(plan, value, threads) : emulate_columns(plan, value, threads);
}

struct PlanCase {
  ReduceWalk walk;
  int64_t outputs;
  int64_t reduced;
  int64_t element_size;
};

const char* walk_name(ReduceWalk walk) { return walk == ReduceWalk::Rows ? "rows" : "columns"; }

std::vector<PlanCase> plan_cases() {
  std::vector<PlanCase> cases;
  for (ReduceWalk walk : {ReduceWalk::Rows, ReduceWalk::Columns}) {
    for (int64_t element_size : {1, 2, 4, 8}) {
      for (int64_t outputs : {1, 3, 33, 300}) {
        for (int64_t reduced : {0, 1, 7, 31, 64, 257, 5000, 70001}) {
          if (outputs * reduced > 3'000'000) continue;
          cases.push_back({walk, outputs, reduced, element_size});
        }
      }
    }
  }
  return cases;
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof(double)) == 0; }

}  // namespace

TEST_CASE("reduce plan: the GPT-2 bias gradients and row sums launch at least twice 132 SMs' blocks") {
  for (int64_t element_size : {2, 4}) {
    for (int64_t columns : {768, 3072}) {
      INFO("[8192, " << columns << "] of " << element_size << "-byte elements");
      const ReducePlan down = make_reduce_plan(ReduceWalk::Columns, columns, 8192, element_size);
      CHECK(down.blocks() >= 2 * kH200Sms);
      CHECK(down.chunks > 1);
      const ReducePlan across = make_reduce_plan(ReduceWalk::Rows, 8192, columns, element_size);
      CHECK(across.blocks() >= 2 * kH200Sms);
      const ReducePlan all = make_reduce_plan(ReduceWalk::Rows, 1, 8192 * columns, element_size);
      CHECK(all.blocks() >= 2 * kH200Sms);
    }
  }
  // [8192, 768] bf16 down its columns: 96 groups of 8 outputs (3 tiles), 128 chunks of 64 rows.
  const ReducePlan bias = make_reduce_plan(ReduceWalk::Columns, 768, 8192, 2);
  CHECK(bias.vector == 8);
  CHECK(bias.groups == 96);
  CHECK(bias.blocks_x == 3);
  CHECK(bias.chunks == 128);
}

TEST_CASE("reduce plan: the vector width is one 16-byte load, at most 8 elements") {
  CHECK(vector_width(1) == 8);
  CHECK(vector_width(2) == 8);
  CHECK(vector_width(4) == 4);
  CHECK(vector_width(8) == 2);
  CHECK_THROWS_WITH(vector_width(0), Catch::Contains("expected an element size of 1 to 16 bytes, got 0"));
}

TEST_CASE("reduce plan: every element of every output is combined exactly once") {
  for (const PlanCase& c : plan_cases()) {
    const ReducePlan plan = make_reduce_plan(c.walk, c.outputs, c.reduced, c.element_size);
    INFO(walk_name(c.walk) << ": " << c.outputs << " outputs of " << c.reduced << ", " << c.element_size
                           << "-byte elements, " << plan.chunks << " chunks");
    REQUIRE(plan.chunks >= 1);
    REQUIRE(plan.chunks <= std::max<int64_t>(1, c.reduced));
    std::vector<int> visits(static_cast<size_t>(c.outputs * c.reduced), 0);
    // The visits are counted directly, and the totals (of ones) must be the reduced count.
    auto value = [&](int64_t output, int64_t element) {
      ++visits[output * c.reduced + element];
      return 1.0;
    };
    const std::vector<double> totals = emulate(plan, value, 1);
    REQUIRE(std::all_of(visits.begin(), visits.end(), [](int count) { return count == 1; }));
    for (int64_t output = 0; output < c.outputs; ++output) REQUIRE(totals[output] == static_cast<double>(c.reduced));
  }
}

TEST_CASE("reduce plan: the order of the sums is fixed by the shape, whatever the order the pieces finish in") {
  for (ReduceWalk walk : {ReduceWalk::Rows, ReduceWalk::Columns}) {
    for (const auto& [outputs, reduced] : {std::pair<int64_t, int64_t>{3, 200000}, {96, 8192}, {1000, 300}}) {
      const ReducePlan plan = make_reduce_plan(walk, outputs, reduced, 2);
      INFO(walk_name(walk) << ": " << outputs << " outputs of " << reduced << ", " << plan.chunks << " chunks");
      // Magnitudes from 1e-8 to 1e8 with both signs: a double sum of these depends on its order.
      auto value = [](int64_t output, int64_t element) {
        const uint64_t h = (static_cast<uint64_t>(output) * 1000003u + static_cast<uint64_t>(element)) * 0x9E3779B97F4A7C15ull;
        const double magnitude = std::pow(10.0, static_cast<double>(h % 17) - 8.0);
        return (h >> 40) % 2 == 0 ? magnitude : -magnitude;
      };
      // The values really are order-dependent: summed forwards and backwards, they differ.
      double forwards = 0, backwards = 0;
      for (int64_t e = 0; e < reduced; ++e) forwards += value(0, e);
      for (int64_t e = reduced; e-- > 0;) backwards += value(0, e);
      REQUIRE_FALSE(same_bits(forwards, backwards));

      const std::vector<double> one_thread = emulate(plan, value, 1);
      const std::vector<double> four_threads = emulate(plan, value, 4);
      const std::vector<double> again = emulate(plan, value, 3);
      for (int64_t output = 0; output < outputs; ++output) {
        REQUIRE(same_bits(one_thread[output], four_threads[output]));
        REQUIRE(same_bits(one_thread[output], again[output]));
        // And it is the sum of these values, not merely a reproducible number.
        long double reference = 0, scale = 0;
        for (int64_t e = 0; e < reduced; ++e) {
          reference += value(output, e);
          scale += std::fabs(value(output, e));
        }
        REQUIRE(std::fabs(static_cast<long double>(one_thread[output]) - reference) <= 1e-12L * scale);
      }
    }
  }
}

TEST_CASE("reduce plan: integers sum exactly, in every walk and chunking") {
  for (const PlanCase& c : plan_cases()) {
    if (c.element_size != 4) continue;
    const ReducePlan plan = make_reduce_plan(c.walk, c.outputs, c.reduced, c.element_size);
    INFO(walk_name(c.walk) << ": " << c.outputs << " outputs of " << c.reduced << ", " << plan.chunks << " chunks");
    auto value = [](int64_t output, int64_t element) { return static_cast<double>((output * 7919 + element * 104729) % 2001 - 1000); };
    const std::vector<double> totals = emulate(plan, value, 2);
    for (int64_t output = 0; output < c.outputs; ++output) {
      int64_t exact = 0;
      for (int64_t e = 0; e < c.reduced; ++e) exact += (output * 7919 + e * 104729) % 2001 - 1000;
      REQUIRE(totals[output] == static_cast<double>(exact));
    }
  }
}
