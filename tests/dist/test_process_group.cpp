// Process groups: argument errors (raised on every rank alike, naming expected and got), sub-groups,
// the node layout, and the communication thread underneath.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dist/communication_thread.h"
#include "dist/local_backend.h"
#include "tests/dist/collective_test_support.h"

// Inside dist's namespace: dist::ReduceOp, not core's kernel-table enum of the same name.
namespace dtrain::dist::collective_testing {
using Catch::Matchers::Contains;

namespace {

// Under mpirun every message names the rank that raised it.
std::string rank_tag() { return uses_mpi() ? detail::concat("[rank ", rank(), "]") : std::string(); }

}  // namespace

TEST_CASE("init gives a world whose group matches rank and size", "[dist]") {
  REQUIRE(is_initialized());
  REQUIRE(world_size() >= 1);
  REQUIRE(rank() >= 0);
  REQUIRE(rank() < world_size());
  REQUIRE(world().size() == world_size());
  REQUIRE(world().rank() == rank());
  REQUIRE(world_ptr().get() == &world());
  for (int r = 0; r < world_size(); ++r) REQUIRE(world().ranks()[r] == r);
  if (world_size() > 1) REQUIRE(uses_mpi());
  if (uses_mpi()) REQUIRE(error_context() == detail::concat("rank ", rank()));
}

TEST_CASE("local rank and size agree with the hostnames every rank reports", "[dist]") {
  char name[256] = {};
  REQUIRE(gethostname(name, sizeof(name) - 1) == 0);
  REQUIRE(hostname() == name);
  // Every rank's hostname, gathered through dtrain itself, as fixed-size int64 words.
  const int64_t words = 32;
  Tensor mine = zeros({words}, {.dtype = kInt64});
  std::memcpy(mine.data(), name, std::min<size_t>(std::strlen(name), words * 8 - 1));
  Tensor all = zeros({world_size() * words}, {.dtype = kInt64});
  world().all_gather(mine, all)->wait();
  std::vector<std::string> names;
  for (int r = 0; r < world_size(); ++r) names.emplace_back(static_cast<const char*>(all.data()) + r * words * 8);

  int expected_local_rank = 0;
  int expected_local_size = 0;
  for (int r = 0; r < world_size(); ++r) {
    if (names[r] != names[rank()]) continue;
    ++expected_local_size;
    if (r < rank()) ++expected_local_rank;
  }
  std::set<std::string> nodes(names.begin(), names.end());
  REQUIRE(local_rank() == expected_local_rank);
  REQUIRE(local_size() == expected_local_size);
  REQUIRE(node_count() == static_cast<int>(nodes.size()));
  REQUIRE(node_index() >= 0);
  REQUIRE(node_index() < node_count());
}

TEST_CASE("on 2 simulated hosts x 2 ranks, each host has local ranks 0 and 1", "[.sim-cluster]") {
  // Run by the sim-cluster CTest: mpirun maps ranks 0, 1 to simnode1 and 2, 3 to simnode2.
  REQUIRE(world_size() == 4);
  REQUIRE(node_count() == 2);
  REQUIRE(local_size() == 2);
  REQUIRE(local_rank() == rank() % 2);
  REQUIRE(node_index() == rank() / 2);
  REQUIRE(hostname() == detail::concat("simnode", rank() / 2 + 1));
  // The ranks of one host as a group: an all_reduce inside it stays inside it.
  auto node = world().split(node_index());
  REQUIRE(node->size() == 2);
  REQUIRE(node->rank() == local_rank());
  Tensor value = full({3}, rank() + 1.0, {.dtype = kFloat64});
  node->all_reduce(value)->wait();
  check_values(value, [&](int64_t) { return node_index() == 0 ? 1.0 + 2.0 : 3.0 + 4.0; });
}

TEST_CASE("collectives refuse bad arguments with expected and got, on every rank", "[dist]") {
  ProcessGroup& group = world();
  const int n = group.size();
  const std::string rank_name = rank_tag();

  SECTION("a tensor that is not contiguous") {
    Tensor transposed = zeros({4, 3}).t();
    REQUIRE_THROWS_WITH(group.all_reduce(transposed),
                        Contains("all_reduce: expected a contiguous tensor as tensor, got shape [3, 4] with strides [1, 3]") &&
                            Contains(rank_name));
    REQUIRE_THROWS_WITH(group.broadcast(transposed), Contains("broadcast: expected a contiguous tensor"));
  }
  SECTION("an undefined tensor") {
    Tensor undefined;
    REQUIRE_THROWS_WITH(group.all_reduce(undefined), Contains("expected a defined tensor as tensor, got an undefined one"));
  }
  SECTION("all_gather with an output of the wrong size") {
    Tensor input = zeros({5});
    Tensor output = zeros({n * 5 + 1});
    REQUIRE_THROWS_WITH(group.all_gather(input, output),
                        Contains(detail::concat("all_gather: expected an output of group size x input elements = ", n,
                                                " x 5 = ", n * 5, " elements, got ", n * 5 + 1)));
  }
  SECTION("reduce_scatter with an input of the wrong size") {
    Tensor input = zeros({n * 4 + 2});
    Tensor output = zeros({4});
    REQUIRE_THROWS_WITH(group.reduce_scatter(input, output),
                        Contains(detail::concat("reduce_scatter: expected an input of group size x output elements = ",
                                                n, " x 4 = ", n * 4, " elements, got ", n * 4 + 2)));
  }
  SECTION("input and output of different dtypes") {
    Tensor input = zeros({3}, {.dtype = kFloat32});
    Tensor output = zeros({n * 3}, {.dtype = kFloat64});
    REQUIRE_THROWS_WITH(group.all_gather(input, output),
                        Contains("expected input and output of the same dtype, got float32 and float64"));
    Tensor scatter_output = zeros({1}, {.dtype = kInt32});
    Tensor scatter_input = zeros({n}, {.dtype = kInt64});
    REQUIRE_THROWS_WITH(group.reduce_scatter(scatter_input, scatter_output),
                        Contains("same dtype, got int64 and int32"));
  }
  SECTION("a root outside the group") {
    Tensor tensor = zeros({3});
    REQUIRE_THROWS_WITH(group.broadcast(tensor, n), Contains(detail::concat("expected a root rank in [0, ", n, "), got ", n)));
    REQUIRE_THROWS_WITH(group.broadcast(tensor, -1), Contains("got -1"));
  }
  SECTION("average of integers") {
    Tensor integers = zeros({3}, {.dtype = kInt32});
    REQUIRE_THROWS_WITH(group.all_reduce(integers, ReduceOp::Average),
                        Contains("all_reduce: average needs a floating dtype, got int32"));
    Tensor flags = zeros({3}, {.dtype = kBool});
    REQUIRE_THROWS_WITH(group.all_reduce(flags, ReduceOp::Average), Contains("got bool"));
    Tensor input = zeros({n * 2}, {.dtype = kInt64});
    Tensor output = zeros({2}, {.dtype = kInt64});
    REQUIRE_THROWS_WITH(group.reduce_scatter(input, output, ReduceOp::Average), Contains("got int64"));
  }
  SECTION("released storage") {
    Tensor tensor = zeros({3});
    tensor.storage()->release();
    REQUIRE_THROWS_WITH(group.all_reduce(tensor), Contains("has released storage"));
  }
  SECTION("a sub-group list with ranks out of range, twice, or none") {
    REQUIRE_THROWS_WITH(group.new_subgroup({0, n}), Contains(detail::concat("expected group ranks in [0, ", n, "), got ", n)));
    REQUIRE_THROWS_WITH(group.new_subgroup({0, 0}), Contains("rank 0 is listed twice"));
    REQUIRE_THROWS_WITH(group.new_subgroup({}), Contains("expected at least one rank, got an empty list"));
  }
  // The errors were raised before anything was queued: the group still works.
  Tensor after = full({4}, 1.0);
  group.all_reduce(after)->wait();
  check_values(after, [&](int64_t) { return static_cast<double>(n); });
}

TEST_CASE("split makes sub-groups by color, ordered by key", "[dist]") {
  ProcessGroup& group = world();
  const int n = group.size();
  const int r = group.rank();

  SECTION("even and odd ranks") {
    auto parity = group.split(r % 2);
    REQUIRE(parity != nullptr);
    REQUIRE(parity->size() == (n + 1 - r % 2) / 2);
    REQUIRE(parity->rank() == r / 2);
    for (int member = 0; member < parity->size(); ++member) REQUIRE(parity->ranks()[member] == 2 * member + r % 2);
    Tensor value = full({5}, r + 1.0, {.dtype = kFloat64});
    parity->all_reduce(value)->wait();
    double expected = 0;
    for (int s = r % 2; s < n; s += 2) expected += s + 1;
    check_values(value, [&](int64_t) { return expected; });
    // The world still works, and so does the sub-group after it.
    Tensor everyone = full({2}, 1.0);
    group.all_reduce(everyone)->wait();
    check_values(everyone, [&](int64_t) { return static_cast<double>(n); });
    parity->barrier()->wait();
  }
  SECTION("keys reverse the order; a negative color is no member") {
    auto reversed = group.split(r == 0 && n > 1 ? -1 : 0, n - r);
    if (r == 0 && n > 1) {
      REQUIRE(reversed == nullptr);
    } else {
      REQUIRE(reversed->size() == (n > 1 ? n - 1 : 1));
      REQUIRE(reversed->ranks()[0] == n - 1);
      Tensor input = full({2}, static_cast<double>(r), {.dtype = kInt64});
      Tensor output = zeros({2 * reversed->size()}, {.dtype = kInt64});
      reversed->all_gather(input, output)->wait();
      check_values(output, [&](int64_t j) { return static_cast<double>(n - 1 - j / 2); });
    }
  }
  SECTION("the ranks of this node") {
    auto node = group.split(node_index(), local_rank());
    REQUIRE(node->size() == local_size());
    REQUIRE(node->rank() == local_rank());
    Tensor count = full({1}, 1, {.dtype = kInt32});
    node->all_reduce(count)->wait();
    REQUIRE(count.item<int>() == local_size());
  }
}

TEST_CASE("new_subgroup takes the listed ranks in the listed order; others get none", "[dist]") {
  ProcessGroup& group = world();
  const int n = group.size();
  const int r = group.rank();
  std::vector<int> listed = {n - 1, 0};  // the last rank leads
  if (n == 1) listed = {0};
  auto subgroup = group.new_subgroup(listed);
  bool member = std::find(listed.begin(), listed.end(), r) != listed.end();
  REQUIRE((subgroup != nullptr) == member);
  if (!member) return;
  REQUIRE(subgroup->ranks() == listed);
  REQUIRE(subgroup->rank() == (r == n - 1 ? 0 : 1));
  // Broadcast from the sub-group's rank 0, which is world rank n - 1.
  Tensor value = full({3}, r * 10.0, {.dtype = kFloat32});
  subgroup->broadcast(value, 0)->wait();
  check_values(value, [&](int64_t) { return (n - 1) * 10.0; });
  // Sub-groups of a sub-group.
  auto first_only = subgroup->new_subgroup({0});
  REQUIRE((first_only != nullptr) == (subgroup->rank() == 0));
  if (first_only) {
    REQUIRE(first_only->ranks() == std::vector<int>{n - 1});
    first_only->barrier()->wait();
  }
}

TEST_CASE("a group without a backend for a device says so", "[dist]") {
  ProcessGroup lonely({rank()}, 0);
  Tensor tensor = zeros({2});
  REQUIRE_THROWS_WITH(lonely.all_reduce(tensor), Contains("the group of 1 rank [") && Contains("has no communication backend for cpu tensors"));
}

namespace {

// A CUDA backend stand-in: counts barriers, or raises as an NCCL communicator aborted by its
// watchdog does.
class BarrierCountingBackend final : public LocalBackend {
 public:
  explicit BarrierCountingBackend(bool aborted) : aborted_(aborted) {}
  const char* name() const override { return "counting"; }
  WorkHandle barrier() override {
    if (aborted_) fail("NCCL all_gather(float32, 4 elements) over 1 ranks has not completed after 0.5 s");
    ++barriers;
    return completed_work();
  }
  int barriers = 0;

 private:
  bool aborted_;
};

}  // namespace

TEST_CASE("barrier() also goes through a group's CUDA backend, so an aborted one raises there", "[dist]") {
  ProcessGroup group({rank()}, 0);
  group.set_backend(DeviceType::CPU, std::make_unique<LocalBackend>());
  group.barrier()->wait();  // a CPU backend alone

  auto healthy = std::make_unique<BarrierCountingBackend>(false);
  BarrierCountingBackend* counting = healthy.get();
  group.set_backend(DeviceType::CUDA, std::move(healthy));
  group.barrier()->wait();
  CHECK(counting->barriers == 1);

  group.set_backend(DeviceType::CUDA, std::make_unique<BarrierCountingBackend>(true));
  CHECK_THROWS_WITH(group.barrier(), Contains("has not completed after 0.5 s"));
}

TEST_CASE("the communication thread runs tasks in order and reports their errors", "[dist]") {
  CommunicationThread thread(std::chrono::milliseconds(0), nullptr);
  std::vector<int> order;
  std::vector<WorkHandle> works;
  for (int k = 0; k < 20; ++k) works.push_back(thread.enqueue("task", [&order, k] { order.push_back(k); }));
  WorkHandle failing = thread.enqueue("failing task", [] { fail("the task's own error"); });
  for (auto& work : works) work->wait();
  for (int k = 0; k < 20; ++k) REQUIRE(order[k] == k);
  REQUIRE_THROWS_WITH(failing->wait(), Contains("the task's own error"));
  thread.stop();
  REQUIRE_FALSE(thread.is_running());
  REQUIRE_THROWS_WITH(thread.enqueue("late task", [] {}), Contains("cannot start late task: dist::finalize() has run"));
}

TEST_CASE("the watchdog reports a task that runs longer than the timeout", "[dist]") {
  std::atomic<bool> reported{false};
  std::string message;
  CommunicationThread thread(std::chrono::milliseconds(100), [&](const std::string& text) {
    message = text;
    reported = true;
  });
  thread.enqueue("MPI all_reduce(float32, 10 elements, sum) over 2 ranks",
                 [&] {
                   auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
                   while (!reported && std::chrono::steady_clock::now() < deadline) {
                     std::this_thread::sleep_for(std::chrono::milliseconds(5));
                   }
                 })
      ->wait();
  REQUIRE(reported);
  REQUIRE_THAT(message, Contains("MPI all_reduce(float32, 10 elements, sum) over 2 ranks has not completed after") &&
                            Contains("DTRAIN_COLLECTIVE_TIMEOUT"));
}

}  // namespace dtrain::dist::collective_testing

namespace dtrain::dist::collective_testing {

// Run by its own CTest (hidden here: it ends the job): only rank 0 issues an all_reduce, so it can
// never complete; the watchdog (DTRAIN_COLLECTIVE_TIMEOUT) must end the job, naming the collective.
TEST_CASE("a collective that the other ranks never join ends the job instead of hanging", "[.watchdog]") {
  if (world_size() == 1) return;
  if (rank() == 0) {
    Tensor tensor = zeros({4});
    world().all_reduce(tensor)->wait();
    FAIL("the all_reduce completed although the other ranks never issued it");
  }
}

}  // namespace dtrain::dist::collective_testing
