// Collective bandwidth: dtrain's MPI-backend all_reduce next to raw MPI on the same buffer,
// float32 sum in place, 1 KiB to 64 MiB. Prints a Markdown table (rank 0).
//
//   mpirun -np 2 build/bench/bench_collectives [--max-mib 64] [--rounds 5] [--calls N] [--percentiles]
//
// --calls N: N timed calls per contender, size and round instead of 20-400 by size (a slow
// network, bench/cost_model_check.sh, would take minutes for the small sizes).
//
// Contenders:
//   MPI_Allreduce            the blocking call from the main thread
//   MPI_Iallreduce + Wait    the nonblocking call, completed at once: how dtrain's thread could
//                            have called MPI instead of the blocking call it makes
//   dtrain all_reduce        world().all_reduce(tensor)->wait(): the queue, and the MPI call on
//                            the waiting thread (a task waited for before the communication
//                            thread took it) or on the communication thread
//
// Bandwidth as nccl-tests defines it: algbw = bytes / time; busbw = algbw * 2(n-1)/n for
// all_reduce (the bytes each rank's link carries in a ring), comparable across world sizes.
//
// Timing: the ranks line up on a barrier before every timed call, and a call's time is the
// slowest rank's; each cell is the median over all timed calls. The machine may be shared, so
// the contenders take turns call by call, the first of each turn rotating (a burst of load hits
// all of them), and the last column compares the best calls too: on a loaded machine a rank
// descheduled for a scheduler slice stalls the other, which shows in the medians of the large
// sizes, not in the best calls. --percentiles prints each contender's spread under its row.
//
// The raw MPI calls come from the main thread while dtrain's queue is idle (every dtrain call is
// waited for first), which MPI_THREAD_SERIALIZED allows.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "bench/timing.h"
#include "core/ops/factory.h"
#include "dist/init.h"
#include "dist/process_group.h"

using dtrain::bench::Clock;
using dtrain::bench::median;

namespace {

struct Contender {
  const char* name;
  std::function<void()> call;
  std::vector<double> seconds;  // slowest rank's time of each timed call
};

void check(int code, const char* call) {
  if (code != MPI_SUCCESS) {
    std::fprintf(stderr, "%s failed with MPI error %d\n", call, code);
    dtrain::dist::abort_job(1);
  }
}

// The time of one call on the slowest rank, all ranks starting together.
double time_once(const std::function<void()>& call) {
  check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
  auto start = Clock::now();
  call();
  double mine = std::chrono::duration<double>(Clock::now() - start).count();
  double slowest = 0;
  check(MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
  return slowest;
}

std::string size_name(int64_t bytes) {
  if (bytes >= (int64_t{1} << 20)) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes >> 10) + " KiB";
}

}  // namespace

int main(int argc, char** argv) {
  namespace dist = dtrain::dist;
  dist::init(&argc, &argv);
  int64_t max_mib = 64;
  int rounds = 5;
  bool percentiles = false;
  int64_t fixed_calls = 0;  // 0: by size
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--percentiles") == 0) percentiles = true;
    else if (std::strcmp(argv[i], "--max-mib") == 0 && i + 1 < argc) max_mib = std::atoll(argv[++i]);
    else if (std::strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) rounds = std::atoi(argv[++i]);
    else if (std::strcmp(argv[i], "--calls") == 0 && i + 1 < argc) fixed_calls = std::atoll(argv[++i]);
  }
  if (!dist::uses_mpi()) {
    std::fprintf(stderr, "bench_collectives: start it with mpirun (e.g. mpirun -np 2 %s)\n", argv[0]);
    return 1;
  }
  const int n = dist::world_size();
  const double bus_factor = n > 1 ? 2.0 * (n - 1) / n : 1.0;
  dist::ProcessGroup& world = dist::world();

  if (dist::rank() == 0) {
    std::printf("all_reduce, float32 sum in place, %d ranks; busbw in GB/s (1e9 bytes/s), times in us (median)\n\n", n);
    std::printf("| size | MPI_Allreduce us | busbw | MPI_Iallreduce+Wait us | busbw | dtrain all_reduce us | busbw "
                "| dtrain / MPI_Allreduce | same, best of all calls |\n");
    std::printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  }
  for (int64_t bytes = 1024; bytes <= max_mib * (int64_t{1} << 20); bytes *= 4) {
    const int64_t count = bytes / 4;
    // One buffer for every contender. Zeros stay zeros under repeated sums: no overflow to inf,
    // no denormals.
    dtrain::Tensor buffer = dtrain::zeros({count});
    std::vector<Contender> contenders = {
        {"MPI_Allreduce",
         [&] {
           check(MPI_Allreduce(MPI_IN_PLACE, buffer.data(), static_cast<int>(count), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
                 "MPI_Allreduce");
         },
         {}},
        {"MPI_Iallreduce+Wait",
         [&] {
           MPI_Request request;
           check(MPI_Iallreduce(MPI_IN_PLACE, buffer.data(), static_cast<int>(count), MPI_FLOAT, MPI_SUM,
                                MPI_COMM_WORLD, &request),
                 "MPI_Iallreduce");
           check(MPI_Wait(&request, MPI_STATUS_IGNORE), "MPI_Wait");
         },
         {}},
        {"dtrain all_reduce", [&] { world.all_reduce(buffer)->wait(); }, {}},
    };
    // At least 20 calls per round, many more when small.
    const int calls_per_round = static_cast<int>(
        fixed_calls > 0 ? fixed_calls : std::clamp<int64_t>((int64_t{80} << 20) / bytes, 20, 400));
    for (auto& contender : contenders) {
      for (int warm_up = 0; warm_up < 3; ++warm_up) contender.call();
    }
    // The contenders alternate call by call, so load from elsewhere falls on all of them alike,
    // and who goes first rotates (on a loaded machine the first of a series fares better).
    const int contender_count = static_cast<int>(contenders.size());
    for (int round = 0; round < rounds; ++round) {
      for (int call = 0; call < calls_per_round; ++call) {
        for (int turn = 0; turn < contender_count; ++turn) {
          Contender& contender = contenders[(call + turn) % contender_count];
          contender.seconds.push_back(time_once(contender.call));
        }
      }
    }
    if (dist::rank() == 0) {
      std::printf("| %s |", size_name(bytes).c_str());
      double times[3];
      for (int c = 0; c < 3; ++c) {
        times[c] = median(contenders[c].seconds);
        double busbw = static_cast<double>(bytes) / times[c] * bus_factor / 1e9;
        std::printf(" %.1f | %.2f |", times[c] * 1e6, busbw);
      }
      double best_mpi = *std::min_element(contenders[0].seconds.begin(), contenders[0].seconds.end());
      double best_dtrain = *std::min_element(contenders[2].seconds.begin(), contenders[2].seconds.end());
      std::printf(" %.2f | %.2f |\n", times[0] / times[2], best_mpi / best_dtrain);
      if (percentiles) {
        for (const Contender& contender : contenders) {
          std::vector<double> sorted = contender.seconds;
          std::sort(sorted.begin(), sorted.end());
          auto at = [&](double fraction) { return sorted[static_cast<size_t>(fraction * (sorted.size() - 1))] * 1e6; };
          std::printf("    %s: p10 %.0f, p50 %.0f, p90 %.0f us over %zu calls\n", contender.name, at(0.1), at(0.5),
                      at(0.9), sorted.size());
        }
      }
      std::fflush(stdout);
    }
  }
  dist::finalize();
  return 0;
}
