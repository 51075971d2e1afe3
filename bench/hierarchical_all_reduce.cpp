// Hierarchical all-reduce next to the flat one (dist/hierarchical_all_reduce.h): one float32 sum
// of --mib MiB, the two algorithms taking turns call by call on the same ranks. Meant for
// simulated hosts with a slow link between them (bench/README.md):
//
//   export SIM_CLUSTER=../shared/tools/sim-cluster SIM_CLUSTER_RATE=200mbit
//   tests/dist/run-sim-cluster.sh 2 2 4 build/bench/bench_hierarchical_all_reduce --mib 16 --calls 5
//
// The hierarchical group is built here over the hosts dist::init found (whatever
// DTRAIN_HIERARCHICAL_ALLREDUCE says); the flat one is a split of the world (always flat). A call's
// time is the slowest rank's, the ranks starting together after a barrier; the table gives the
// median and the best of --calls calls each, after one call each to warm up.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "bench/timing.h"
#include "core/ops/factory.h"
#include "dist/hierarchical_all_reduce.h"
#include "dist/init.h"
#include "dist/mpi_backend.h"
#include "dist/process_group.h"

namespace dist = dtrain::dist;
using dtrain::bench::Clock;
using dtrain::bench::median;

namespace {

// The slowest rank's seconds for one call, all ranks starting together.
double time_once(dist::ProcessGroup& flat, const std::function<void()>& call) {
  flat.barrier()->wait();
  auto start = Clock::now();
  call();
  dtrain::Tensor seconds = dtrain::full({1}, std::chrono::duration<double>(Clock::now() - start).count(),
                                        {.dtype = dtrain::kFloat64});
  flat.all_reduce(seconds, dist::ReduceOp::Max)->wait();
  return seconds.to_vector<double>()[0];
}

}  // namespace

int main(int argc, char** argv) {
  dist::init(&argc, &argv);
  int64_t mib = 16;
  int calls = 5;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--mib") == 0 && i + 1 < argc) mib = std::atoll(argv[++i]);
    else if (std::strcmp(argv[i], "--calls") == 0 && i + 1 < argc) calls = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "bench_hierarchical_all_reduce: unknown argument '%s' (--mib M, --calls C)\n", argv[i]);
      return 2;
    }
  }
  if (!dist::uses_mpi() || mib < 1 || calls < 1) {
    std::fprintf(stderr, "bench_hierarchical_all_reduce: start it with mpirun, --mib >= 1 and --calls >= 1\n");
    return 1;
  }
  auto flat = dist::world().split(0);
  auto copy = dist::world().backend_for(dtrain::Device::cpu()).split(0, 0);
  std::unique_ptr<dist::MpiBackend> flat_copy(static_cast<dist::MpiBackend*>(copy.release()));
  auto hierarchical = std::make_shared<dist::ProcessGroup>(dist::world().ranks(), dist::rank());
  hierarchical->set_backend(dtrain::DeviceType::CPU,
                            std::make_unique<dist::HierarchicalAllReduce>(std::move(flat_copy), dist::node_index()));

  const int64_t bytes = mib << 20;
  dtrain::Tensor buffer = dtrain::zeros({bytes / 4});  // zeros stay zeros under repeated sums
  struct Contender {
    const char* name;
    dist::ProcessGroup* group;
    std::vector<double> seconds;
  };
  std::vector<Contender> contenders = {{"flat", flat.get(), {}}, {"hierarchical", hierarchical.get(), {}}};
  for (Contender& contender : contenders) contender.group->all_reduce(buffer)->wait();  // warm-up
  for (int call = 0; call < calls; ++call) {
    for (int turn = 0; turn < 2; ++turn) {
      Contender& contender = contenders[(call + turn) % 2];
      contender.seconds.push_back(time_once(*flat, [&] { contender.group->all_reduce(buffer)->wait(); }));
    }
  }
  if (dist::rank() == 0) {
    std::printf("all_reduce of %lld MiB float32 (sum), %d ranks on %d hosts (%d on this one), %d calls each\n\n",
                static_cast<long long>(mib), dist::world_size(), dist::node_count(), dist::local_size(), calls);
    std::printf("| algorithm | median s | best s | algbw MB/s (median) |\n| --- | ---: | ---: | ---: |\n");
    for (const Contender& contender : contenders) {
      double middle = median(contender.seconds);
      double best = *std::min_element(contender.seconds.begin(), contender.seconds.end());
      std::printf("| %s | %.3f | %.3f | %.1f |\n", contender.name, middle, best, static_cast<double>(bytes) / middle / 1e6);
    }
    std::printf("\nflat / hierarchical (median): %.2fx\n", median(contenders[0].seconds) / median(contenders[1].seconds));
  }
  dist::finalize();
  return 0;
}
