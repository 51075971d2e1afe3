// What the profiler (core/profiler.h) costs: GPT training steps (zero_grad + forward + loss +
// backward + AdamW step) with profiling off and on, alternating step by step so that the load of
// a shared machine falls on both alike.
//
//   bench_profiler_overhead [--threads 1] [--steps 50]
//
// Prints a table: per model, the events one step records (ops, autograd nodes and the ops inside
// them), the median step time off and on, their ratio, and the cost per recorded event. Times are
// the computing thread's CPU time (run with --threads 1): on a machine shared with other work,
// wall time mixes their load in, CPU time does not; the wall-time ratio is printed beside it. Off, each op pays one relaxed load and a
// branch that is never taken (core/backend.cpp's backend_for), so "off" is the program's own
// time; the rows show what recording adds.
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "bench/timing.h"
#include "bench/train_step_models.h"
#include "dtrain.h"

using dtrain::bench::Clock;
using dtrain::bench::median;
using dtrain::bench::milliseconds;

namespace {

struct Model {
  const char* name;
  dtrain::bench::GptShape shape;
  int64_t batch;
};

struct Result {
  size_t events = 0;
  double off_ms = 0;  // thread CPU time
  double on_ms = 0;
  double wall_ratio = 0;
};

Result measure(const Model& config, int steps) {
  using namespace dtrain;
  manual_seed(1);
  auto model = std::make_shared<bench::BenchGpt>(config.shape);
  optim::AdamW optimizer(model->parameters(), {.lr = 1e-3});
  Tensor sequence = (rand({config.batch, config.shape.context + 1}) * static_cast<double>(config.shape.vocabulary)).to(kInt64);
  const Tensor tokens = sequence.narrow(1, 0, config.shape.context).contiguous();
  const Tensor targets = sequence.narrow(1, 1, config.shape.context).contiguous();
  auto step = [&] {
    optimizer.zero_grad();
    cross_entropy((*model)(tokens), targets).backward();
    optimizer.step();
  };
  for (int i = 0; i < 3; ++i) step();  // warm up: optimizer state, allocator, caches

  Result result;
  std::vector<double> off, on, off_wall, on_wall;
  for (int i = 0; i < steps; ++i) {
    Clock::time_point begin = Clock::now();
    double cpu = bench::thread_cpu_milliseconds();
    step();
    off.push_back(bench::thread_cpu_milliseconds() - cpu);
    off_wall.push_back(milliseconds(begin, Clock::now()));

    profiler::Profile profile;
    begin = Clock::now();
    cpu = bench::thread_cpu_milliseconds();
    step();
    on.push_back(bench::thread_cpu_milliseconds() - cpu);
    on_wall.push_back(milliseconds(begin, Clock::now()));
    profile.stop();  // collecting the events is not part of the step
    result.events = profile.events().size();
  }
  result.off_ms = median(off);
  result.on_ms = median(on);
  result.wall_ratio = median(on_wall) / median(off_wall);
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1;
  int steps = 50;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--threads") threads = std::atoi(argv[i + 1]);
    else if (flag == "--steps") steps = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: bench_profiler_overhead [--threads N] [--steps N]\n");
      return 2;
    }
  }
  if (argc % 2 == 0 || threads < 1 || steps < 1) {
    std::fprintf(stderr, "usage: bench_profiler_overhead [--threads N] [--steps N]\n");
    return 2;
  }
  dtrain::set_num_threads(threads);
  const std::vector<Model> models = {
      {"gpt d128 T64 B8 (2 layers)", {.vocabulary = 256, .context = 64, .d_model = 128, .layers = 2, .heads = 4}, 8},
      {"gpt d32 T16 B4 (2 layers, op-bound)", {.vocabulary = 64, .context = 16, .d_model = 32, .layers = 2, .heads = 2}, 4},
  };
  std::printf("profiler overhead: median of %d steps each, off and on alternating, %d thread(s)\n\n", steps, threads);
  std::printf("| model | events per step | step off (ms CPU) | step on (ms CPU) | on / off | on / off (wall) | "
              "cost per event (us) |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|\n");
  for (const Model& model : models) {
    const Result result = measure(model, steps);
    const double per_event_us = result.events == 0 ? 0.0 : 1e3 * (result.on_ms - result.off_ms) / result.events;
    std::printf("| %s | %zu | %.3f | %.3f | %.3f | %.3f | %.2f |\n", model.name, result.events, result.off_ms,
                result.on_ms, result.on_ms / result.off_ms, result.wall_ratio, per_event_us);
  }
  return 0;
}
