// Single-precision GEMM throughput: dtrain next to OpenBLAS cblas_sgemm on the same inputs,
// square sizes, 1 and 2 threads, in one run. Prints a Markdown table.
//
// dtrain is timed twice: the public op dtrain::matmul (which allocates its result every call)
// and the CPU kernel alone writing into a preallocated result, as cblas_sgemm does. The gap
// between the two is the cost of a fresh result buffer (page faults), not of the GEMM.
//
// The machine may be shared, so the contenders take turns: a few rounds, each timing a block of
// runs of every contender, after one warm-up of each. A burst of load from elsewhere then hits
// all of them rather than one. Each cell is the median over all timed runs. "cores busy" is
// (user + system CPU time) / wall time over a contender's timed runs: a thread count that did
// not take effect, a pool of the other library still spinning, or cores taken by another
// process show up there.
#include <cblas.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/backend.h"
#include "core/error.h"
#include "core/ops/factory.h"
#include "core/ops/matmul.h"
#include "core/parallel.h"

namespace {

constexpr int64_t kSizes[] = {256, 512, 1024, 1536, 2048};
constexpr int kThreadCounts[] = {1, 2};
constexpr int kRounds = 3;
constexpr int kMinRunsPerRound = 3;
constexpr int kMaxRunsPerRound = 300;
constexpr double kMinSecondsPerContender = 0.6;  // small sizes repeat until their runs take this long
// Idle workers keep spinning for a while after a call (OpenBLAS's pthreads, libgomp's team); a
// pause before each block lets the previous contender's pool go to sleep first.
constexpr auto kPauseBetweenBlocks = std::chrono::milliseconds(300);

double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec); };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct Contender {
  explicit Contender(std::function<void()> body) : run(std::move(body)) {}

  std::function<void()> run;
  int runs_per_round = kMinRunsPerRound;
  std::vector<double> seconds;  // every timed run
  double cpu_seconds = 0;
  double wall_seconds = 0;

  double median() {
    std::nth_element(seconds.begin(), seconds.begin() + seconds.size() / 2, seconds.end());
    return seconds[seconds.size() / 2];
  }
  double cores_busy() const { return cpu_seconds / wall_seconds; }
};

void warm_up(Contender& contender) {
  std::this_thread::sleep_for(kPauseBetweenBlocks);
  auto start = std::chrono::steady_clock::now();
  contender.run();
  double wanted = kMinSecondsPerContender / kRounds / std::max(seconds_since(start), 1e-9);
  contender.runs_per_round = std::clamp(static_cast<int>(wanted), kMinRunsPerRound, kMaxRunsPerRound);
}

void time_block(Contender& contender) {
  std::this_thread::sleep_for(kPauseBetweenBlocks);
  double cpu_start = cpu_seconds();
  auto block_start = std::chrono::steady_clock::now();
  for (int i = 0; i < contender.runs_per_round; ++i) {
    auto start = std::chrono::steady_clock::now();
    contender.run();
    contender.seconds.push_back(seconds_since(start));
  }
  contender.wall_seconds += seconds_since(block_start);
  contender.cpu_seconds += cpu_seconds() - cpu_start;
}

void measure_in_turns(std::vector<Contender*> contenders) {
  for (Contender* contender : contenders) warm_up(*contender);
  for (int round = 0; round < kRounds; ++round) {
    for (Contender* contender : contenders) time_block(*contender);
  }
}

// The machine is shared: the load average before and after says whether others were busy.
std::string load_average() {
  std::ifstream loadavg("/proc/loadavg");
  std::string one, five, fifteen;
  loadavg >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

std::string cpu_model() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

const char* openblas_threading() {
  switch (openblas_get_parallel()) {
    case 0: return "sequential";
    case 1: return "pthreads";
    case 2: return "OpenMP";
  }
  return "unknown";
}

void set_threads(int threads) {
  dtrain::set_num_threads(threads);
  openblas_set_num_threads(threads);
  if (dtrain::num_threads() != threads || openblas_get_num_threads() != threads) {
    dtrain::fail("gemm bench: expected ", threads, " threads, got dtrain ", dtrain::num_threads(), ", OpenBLAS ",
                 openblas_get_num_threads());
  }
}

double max_abs_difference(const std::vector<float>& x, const std::vector<float>& y) {
  double largest = 0;
  for (size_t i = 0; i < x.size(); ++i) largest = std::max(largest, std::fabs(static_cast<double>(x[i]) - y[i]));
  return largest;
}

}  // namespace

int main() {
  std::printf("CPU: %s, %u logical cores\n", cpu_model().c_str(), std::thread::hardware_concurrency());
  std::printf("OpenBLAS: %s (core %s, threading %s)\n", openblas_get_config(), openblas_get_corename(),
              openblas_threading());
  std::printf("Load average at start: %s\n", load_average().c_str());
  std::printf("GFLOP/s = 2 n^3 / median time over %d alternating rounds, after one warm-up each.\n", kRounds);
  std::printf("matmul: the public op, allocating its result; kernel: into a preallocated result.\n\n");
  std::printf("| n | threads | dtrain matmul | dtrain kernel | OpenBLAS | matmul/OpenBLAS | kernel/OpenBLAS |"
              " cores busy (matmul, kernel, OpenBLAS) | max abs diff |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---|---:|\n");
  for (int threads : kThreadCounts) {
    set_threads(threads);
    for (int64_t n : kSizes) {
      dtrain::Tensor a = dtrain::uniform({n, n}, -1.0, 1.0);
      dtrain::Tensor b = dtrain::uniform({n, n}, -1.0, 1.0);
      dtrain::Tensor op_result;
      dtrain::Tensor kernel_result = dtrain::empty({n, n});
      std::vector<float> reference(static_cast<size_t>(n * n));
      int size = static_cast<int>(n);

      Contender op{[&] { op_result = dtrain::matmul(a, b); }};
      Contender kernel{[&] { dtrain::backend_for(a.device()).matmul(a, b, kernel_result); }};
      Contender openblas{[&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, size, size, size, 1.0f, a.data_ptr<float>(), size,
                    b.data_ptr<float>(), size, 0.0f, reference.data(), size);
      }};
      measure_in_turns({&op, &kernel, &openblas});

      double flops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
      double op_gflops = flops / op.median() * 1e-9;
      double kernel_gflops = flops / kernel.median() * 1e-9;
      double openblas_gflops = flops / openblas.median() * 1e-9;
      double difference = std::max(max_abs_difference(op_result.to_vector<float>(), reference),
                                   max_abs_difference(kernel_result.to_vector<float>(), reference));
      std::printf("| %lld | %d | %.1f | %.1f | %.1f | %.2f | %.2f | %.2f, %.2f, %.2f | %.1e |\n",
                  static_cast<long long>(n), threads, op_gflops, kernel_gflops, openblas_gflops,
                  op_gflops / openblas_gflops, kernel_gflops / openblas_gflops, op.cores_busy(), kernel.cores_busy(),
                  openblas.cores_busy(), difference);
      std::fflush(stdout);
    }
  }
  std::printf("\nLoad average at end: %s\n", load_average().c_str());
  return 0;
}
