// Debug mode: when the ranks issue different collectives, or one rank's arguments are refused,
// every rank raises the same error naming both calls — within seconds, instead of hanging.
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "tests/dist/collective_test_support.h"

// Inside dist's namespace: dist::ReduceOp, not core's kernel-table enum of the same name.
namespace dtrain::dist::collective_testing {
using Catch::Matchers::Contains;

TEST_CASE("with the checks on, consistent collectives run as before", "[dist]") {
  CollectiveChecksScope checks(true);
  ProcessGroup& group = world();
  const int n = group.size();
  const int r = group.rank();
  Tensor tensor = make_tensor(1001, kFloat32, [&](int64_t i) { return contribution(r, i); });
  group.all_reduce(tensor, ReduceOp::Average)->wait();
  check_values(tensor, [&](int64_t i) { return sum_over_ranks(n, i) / n; });
  Tensor gathered = zeros({n * 5}, {.dtype = kInt64});
  group.all_gather(full({5}, r, {.dtype = kInt64}), gathered)->wait();
  check_values(gathered, [&](int64_t j) { return static_cast<double>(j / 5); });
  Tensor empty_tensor = zeros({0});
  group.all_reduce(empty_tensor)->wait();
  group.barrier()->wait();
  auto subgroup = group.split(0);
  require_group_still_works(*subgroup);
}

TEST_CASE("with the checks on, different collectives raise on every rank with both calls", "[dist]") {
  CollectiveChecksScope checks(true);
  ProcessGroup& group = world();
  const int n = group.size();
  if (n == 1) return;  // one rank cannot disagree with itself
  const int r = group.rank();

  SECTION("all_reduce on rank 0, all_gather on the others") {
    Tensor tensor = zeros({10});
    Tensor gathered = zeros({n * 10});
    std::string message = error_of([&] {
      if (r == 0) group.all_reduce(tensor)->wait();
      else group.all_gather(tensor, gathered)->wait();
    });
    REQUIRE_THAT(message, Contains(detail::concat("[rank ", r, "]")) &&
                              Contains("collectives differ across ranks: rank 0 called all_reduce(float32, 10 elements, sum, #") &&
                              Contains("but rank 1 called all_gather(float32, 10 elements per rank, #"));
  }
  SECTION("the same collective with different element counts") {
    Tensor tensor = zeros({r == n - 1 ? 11 : 10}, {.dtype = kFloat64});
    std::string message = error_of([&] { group.all_reduce(tensor)->wait(); });
    REQUIRE_THAT(message, Contains("rank 0 called all_reduce(float64, 10 elements, sum, #") &&
                              Contains(detail::concat("but rank ", n - 1, " called all_reduce(float64, 11 elements, sum, #")));
  }
  SECTION("broadcasts from different roots") {
    Tensor tensor = zeros({4}, {.dtype = kInt32});
    std::string message = error_of([&] { group.broadcast(tensor, r == 0 ? 0 : 1)->wait(); });
    REQUIRE_THAT(message, Contains("rank 0 called broadcast(int32, 4 elements, root 0, #") &&
                              Contains("but rank 1 called broadcast(int32, 4 elements, root 1, #"));
  }
  SECTION("different reduce ops") {
    Tensor tensor = zeros({4});
    std::string message = error_of([&] { group.all_reduce(tensor, r == 0 ? ReduceOp::Sum : ReduceOp::Max)->wait(); });
    REQUIRE_THAT(message, Contains("all_reduce(float32, 4 elements, sum, #") && Contains("all_reduce(float32, 4 elements, max, #"));
  }
  SECTION("a barrier against an all_reduce") {
    Tensor tensor = zeros({4});
    std::string message = error_of([&] {
      if (r == 0) group.barrier()->wait();
      else group.all_reduce(tensor)->wait();
    });
    REQUIRE_THAT(message, Contains("rank 0 called barrier(#") && Contains("but rank 1 called all_reduce(float32, 4 elements"));
  }
  // The mismatched collective was skipped on every rank alike: the group is still in step.
  require_group_still_works(group);
}

TEST_CASE("with the checks on, one rank's refused arguments raise on every rank", "[dist]") {
  CollectiveChecksScope checks(true);
  ProcessGroup& group = world();
  const int n = group.size();
  const int r = group.rank();
  // Only the last rank passes a transposed (not contiguous) tensor; without the checks the others
  // would wait in an all_reduce that rank never starts.
  Tensor tensor = r == n - 1 ? zeros({4, 3}).t() : zeros({3, 4});
  std::string message = error_of([&] { group.all_reduce(tensor)->wait(); });
  REQUIRE_THAT(message, Contains(detail::concat("rank ", n - 1, " could not issue all_reduce(float32, 12 elements, sum, #")) &&
                            Contains("all_reduce: expected a contiguous tensor as tensor, got shape [3, 4]"));
  require_group_still_works(group);
}

TEST_CASE("with the checks on, a rank that skipped a collective is found by the sequence number", "[dist]") {
  ProcessGroup& group = world();
  const int n = group.size();
  if (n == 1) return;
  const int r = group.rank();
  // A group of its own, since its sequence numbers stay apart after this.
  auto everyone = group.split(0);
  {
    // Without the checks, only the last rank gets an error (its tensor alone is not contiguous);
    // it counted the call, the others never made one.
    CollectiveChecksScope checks(false);
    if (r == n - 1) {
      Tensor transposed = zeros({2, 2}).t();
      REQUIRE_THROWS_WITH(everyone->all_reduce(transposed), Contains("expected a contiguous tensor"));
    }
  }
  CollectiveChecksScope checks(true);
  Tensor tensor = zeros({4});
  std::string message = error_of([&] { everyone->all_reduce(tensor)->wait(); });
  REQUIRE_THAT(message, Contains("rank 0 called all_reduce(float32, 4 elements, sum, #0)") &&
                            Contains(detail::concat("but rank ", n - 1, " called all_reduce(float32, 4 elements, sum, #1)")));
}

TEST_CASE("DTRAIN_DEBUG_COLLECTIVES sets the checks at init", "[dist]") {
  const char* variable = std::getenv("DTRAIN_DEBUG_COLLECTIVES");
  bool expected = variable != nullptr && std::string(variable) == "1";
  REQUIRE(collective_checks_enabled() == expected);
}

}  // namespace dtrain::dist::collective_testing
