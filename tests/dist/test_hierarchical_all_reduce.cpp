// The hierarchical all-reduce (dist/hierarchical_all_reduce.h) against the flat one: bitwise equal
// where every partial sum is exact (integer-valued data, every dtype, sum, max and average, sizes
// from 0 to 300,007), within a stated tolerance on random floats, and the same bytes on every rank.
//
// Under plain mpirun every rank has the same hostname, so the hosts are made up here (the backend
// takes a host index): two ranks per host, hosts dealt round robin, hosts of unequal size. On
// simulated hosts (the sim-cluster CTests) dist::init installs it on the world group by itself.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dist/init.h"
#include "tests/dist/collective_test_support.h"

#ifdef DTRAIN_WITH_MPI
#include "dist/hierarchical_all_reduce.h"
#include "dist/mpi_backend.h"
#endif

// Inside dist's namespace: dist::ReduceOp, not core's kernel-table enum of the same name.
namespace dtrain::dist::collective_testing {
namespace {

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.data(), b.data(), a.nbytes()) == 0;
}

std::vector<ReduceOp> ops_for(DType dtype) {
  if (is_floating(dtype)) return {ReduceOp::Sum, ReduceOp::Max, ReduceOp::Average};
  return {ReduceOp::Sum, ReduceOp::Max};
}

double expected_reduction(ReduceOp op, int n, int64_t index) {
  switch (op) {
    case ReduceOp::Sum: return sum_over_ranks(n, index);
    case ReduceOp::Max: return max_over_ranks(n, index);
    case ReduceOp::Average: return sum_over_ranks(n, index) / n;
  }
  return 0;
}

// Rank 0's tensor, broadcast (flat) to every rank and compared bitwise with this rank's.
bool same_on_every_rank(ProcessGroup& flat, const Tensor& tensor) {
  Tensor first = tensor.clone();
  flat.broadcast(first, 0)->wait();
  Tensor mismatches = full({1}, same_bytes(first, tensor) ? 0.0 : 1.0, {.dtype = kInt64});
  flat.all_reduce(mismatches, ReduceOp::Sum)->wait();
  return mismatches.to_vector<int64_t>()[0] == 0;
}

// Every dtype, op and size: integer-valued contributions, whose sums, maxima and means are exact in
// every dtype whatever the order of reduction, so the two algorithms must agree to the bit.
void check_exact_data_matches_flat(ProcessGroup& hierarchical, ProcessGroup& flat) {
  const int n = flat.size();
  const int r = flat.rank();
  for (DType dtype : kNumericDtypes) {
    for (ReduceOp op : ops_for(dtype)) {
      for (int64_t numel : kSizes) {
        INFO(dtype_name(dtype) << ", " << reduce_op_name(op) << ", " << numel << " elements, " << n << " ranks");
        Tensor by_hosts = make_tensor(numel, dtype, [&](int64_t i) { return contribution(r, i); });
        Tensor flat_result = by_hosts.clone();
        hierarchical.all_reduce(by_hosts, op)->wait();
        flat.all_reduce(flat_result, op)->wait();
        CHECK(same_bytes(by_hosts, flat_result));
        check_values(by_hosts, [&](int64_t i) { return expected_reduction(op, n, i); });
      }
    }
  }
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max}) {  // bool: a logical or
    Tensor flags = make_tensor(1001, kBool, [&](int64_t i) { return truth(r, n, i); });
    hierarchical.all_reduce(flags, op)->wait();
    check_values(flags, [&](int64_t i) { return i % (n + 1) != n ? 1.0 : 0.0; });
  }
}

// Random float32 of N(0, 1): the order of the partial sums differs between the algorithms, so the
// results may differ in the last bits. Each element sums at most 4 values of magnitude below 6
// (N(0, 1) beyond 6 sigma: never at this size and seed), and float32 rounding of such a sum in any
// order stays below 4 x 24 x 2^-24 < 6e-6: the tolerance is 1e-5 absolute. Every rank must hold the
// same bytes (the leaders broadcast one result).
void check_random_data_near_flat(ProcessGroup& hierarchical, ProcessGroup& flat) {
  const int r = flat.rank();
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Average}) {
    for (int64_t numel : {int64_t{1}, int64_t{7}, int64_t{1001}, int64_t{300007}}) {
      INFO(reduce_op_name(op) << ", " << numel << " random float32 elements");
      Generator generator(1000 + r);
      Tensor by_hosts = randn({numel}, {}, &generator);
      Tensor flat_result = by_hosts.clone();
      hierarchical.all_reduce(by_hosts, op)->wait();
      flat.all_reduce(flat_result, op)->wait();
      std::vector<float> a = by_hosts.to_vector<float>();
      std::vector<float> b = flat_result.to_vector<float>();
      double largest_difference = 0;
      for (size_t i = 0; i < a.size(); ++i) largest_difference = std::max(largest_difference, std::fabs(double(a[i]) - b[i]));
      CHECK(largest_difference <= 1e-5);
      CHECK(same_on_every_rank(flat, by_hosts));
    }
  }
}

// The calls that are not all_reduce go to the flat backend: their results, checked in closed form.
void check_other_collectives(ProcessGroup& hierarchical) {
  const int n = hierarchical.size();
  const int r = hierarchical.rank();
  for (int root = 0; root < n; ++root) {
    Tensor tensor = make_tensor(1001, kFloat32, [&](int64_t i) { return contribution(r, i); });
    hierarchical.broadcast(tensor, root)->wait();
    check_values(tensor, [&](int64_t i) { return contribution(root, i); });
  }
  Tensor mine = full({3}, r + 1.0, {.dtype = kInt64});
  Tensor gathered = zeros({3 * n}, {.dtype = kInt64});
  hierarchical.all_gather(mine, gathered)->wait();
  check_values(gathered, [&](int64_t i) { return i / 3 + 1.0; });
  Tensor everything = make_tensor(2 * n, kFloat64, [&](int64_t i) { return contribution(r, i); });
  Tensor shard = zeros({2}, {.dtype = kFloat64});
  hierarchical.reduce_scatter(everything, shard, ReduceOp::Sum)->wait();
  check_values(shard, [&](int64_t i) { return sum_over_ranks(n, 2 * r + i); });
  hierarchical.barrier()->wait();
  // A sub-group of a hierarchical group all-reduces (flat) among its own ranks only.
  auto parity = hierarchical.split(r % 2);
  Tensor value = full({5}, r + 1.0, {.dtype = kFloat64});
  parity->all_reduce(value)->wait();
  double expected = 0;
  for (int other = r % 2; other < n; other += 2) expected += other + 1.0;
  check_values(value, [&](int64_t) { return expected; });
}

}  // namespace

#ifdef DTRAIN_WITH_MPI

namespace {

struct MadeUpHosts {
  const char* name;
  std::function<int(int rank, int size)> host_of;
};

// The world's ranks as a group whose CPU backend is hierarchical over the given hosts.
std::shared_ptr<ProcessGroup> group_over_hosts(const MadeUpHosts& hosts) {
  std::unique_ptr<CommunicationBackend> copy = world().backend_for(Device::cpu()).split(0, 0);  // collective
  auto* flat = dynamic_cast<MpiBackend*>(copy.get());
  REQUIRE(flat != nullptr);
  copy.release();
  auto group = std::make_shared<ProcessGroup>(world().ranks(), world().rank());
  auto backend = std::make_unique<HierarchicalAllReduce>(std::unique_ptr<MpiBackend>(flat),
                                                         hosts.host_of(world().rank(), world().size()));
  // The host's size and leader, counted here from the host of every rank.
  const int r = world().rank();
  const int n = world().size();
  int on_my_host = 0;
  int first_on_my_host = -1;
  for (int other = 0; other < n; ++other) {
    if (hosts.host_of(other, n) != hosts.host_of(r, n)) continue;
    ++on_my_host;
    if (first_on_my_host < 0) first_on_my_host = other;
  }
  CHECK(backend->ranks_on_this_host() == on_my_host);
  CHECK(backend->is_leader() == (first_on_my_host == r));
  group->set_backend(DeviceType::CPU, std::move(backend));
  return group;
}

const std::vector<MadeUpHosts> kMadeUpHosts = {
    {"two ranks per host", [](int rank, int) { return rank / 2; }},
    {"hosts dealt round robin", [](int rank, int) { return rank % 2; }},
    {"rank 0 alone, the others on one host", [](int rank, int) { return rank == 0 ? 0 : 1; }},
    {"the last rank alone (hosts numbered out of order)", [](int rank, int size) { return rank == size - 1 ? 0 : 7; }},
    {"one rank per host", [](int rank, int) { return rank; }},
    {"one host", [](int, int) { return 0; }},
};

}  // namespace

TEST_CASE("hierarchical all_reduce over made-up hosts equals the flat all_reduce bitwise on exact data", "[dist]") {
  if (!uses_mpi()) return;  // a world of one has no MPI backend to split; nothing to reduce
  auto flat = world().split(0);  // a flat MPI backend whatever the world uses
  for (const MadeUpHosts& hosts : kMadeUpHosts) {
    INFO(hosts.name);
    auto hierarchical = group_over_hosts(hosts);
    check_exact_data_matches_flat(*hierarchical, *flat);
  }
}

TEST_CASE("hierarchical all_reduce over made-up hosts stays within 1e-5 of the flat one on random floats", "[dist]") {
  if (!uses_mpi()) return;
  auto flat = world().split(0);
  for (const MadeUpHosts& hosts : kMadeUpHosts) {
    INFO(hosts.name);
    auto hierarchical = group_over_hosts(hosts);
    check_random_data_near_flat(*hierarchical, *flat);
  }
}

TEST_CASE("hierarchical backend hands every other collective and split to the flat backend", "[dist]") {
  if (!uses_mpi()) return;
  auto hierarchical = group_over_hosts(kMadeUpHosts[0]);
  check_other_collectives(*hierarchical);
}

#endif  // DTRAIN_WITH_MPI

TEST_CASE("on one host the default keeps the flat all_reduce", "[dist]") {
  const char* setting = std::getenv("DTRAIN_HIERARCHICAL_ALLREDUCE");
  const bool default_setting = setting == nullptr || std::string(setting) == "auto" || std::string(setting).empty();
  if (node_count() == 1 && default_setting) {
    CHECK(std::string(all_reduce_algorithm()) == "flat");
    CHECK(std::string(world().backend_for(Device::cpu()).name()) != "mpi hierarchical");
  }
}

// Run by the sim-cluster CTests on 2 simulated hosts (2 + 2 or 2 + 1 ranks) with
// DTRAIN_HIERARCHICAL_ALLREDUCE unset (auto) or 1: dist::init chose the hierarchical all-reduce.
TEST_CASE("on simulated hosts the world all-reduces hierarchically and equals the flat all_reduce", "[.sim-cluster-hierarchical]") {
  REQUIRE(node_count() == 2);
  REQUIRE(std::string(all_reduce_algorithm()) == "hierarchical");
  REQUIRE(std::string(world().backend_for(Device::cpu()).name()) == "mpi hierarchical");
  auto flat = world().split(0);  // the split of a hierarchical backend is flat
  REQUIRE(std::string(flat->backend_for(Device::cpu()).name()) == "mpi");
  check_exact_data_matches_flat(world(), *flat);
  check_random_data_near_flat(world(), *flat);
  check_other_collectives(world());
}

// Run under plain mpirun (one host) with DTRAIN_HIERARCHICAL_ALLREDUCE=1: forced where auto would
// not choose it, the world reduces to rank 0 and broadcasts back.
TEST_CASE("on one host DTRAIN_HIERARCHICAL_ALLREDUCE=1 forces the hierarchical all_reduce", "[.forced-hierarchical]") {
  REQUIRE(node_count() == 1);
  REQUIRE(world_size() > 1);
  REQUIRE(std::string(all_reduce_algorithm()) == "hierarchical");
  auto flat = world().split(0);
  check_exact_data_matches_flat(world(), *flat);
}

// Run by the sim-cluster CTest with DTRAIN_HIERARCHICAL_ALLREDUCE=0.
TEST_CASE("on simulated hosts DTRAIN_HIERARCHICAL_ALLREDUCE=0 keeps the flat all_reduce", "[.sim-cluster-flat]") {
  REQUIRE(node_count() == 2);
  REQUIRE(std::string(all_reduce_algorithm()) == "flat");
  REQUIRE(std::string(world().backend_for(Device::cpu()).name()) == "mpi");
  Tensor value = full({3}, rank() + 1.0, {.dtype = kFloat64});
  world().all_reduce(value)->wait();
  const int n = world_size();
  check_values(value, [&](int64_t) { return n * (n + 1) / 2.0; });
}

}  // namespace dtrain::dist::collective_testing
