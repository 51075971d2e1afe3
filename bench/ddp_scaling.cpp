// DDP scaling: the reference GPT (bench/train_step_models.h: vocab 256, context 128, d_model 256,
// 4 layers, 4 heads, MLP x4, GELU-tanh) trained with AdamW at 16 sequences per rank, timed per
// step. Run under mpirun -np 1 and -np 2 (bench/ddp_scaling.sh does, next to PyTorch DDP): at the
// same per-rank batch, scaling efficiency is t(1 rank) / t(2 ranks).
//
//   mpirun -np 2 bench_ddp_scaling [--threads 1] [--steps 20] [--warmup 3] [--bucket-cap-mb 25]
//                                  [--no-ddp]   (one process, the model alone: the baseline)
//
// Rank 0 prints one line of key=value pairs: the median and the fastest (best_ms: the least
// disturbed by other work on the machine) milliseconds of the step (slowest rank) and
// of its phases on rank 0 (forward with the loss; backward, which includes waiting for the
// all-reduces; optimizer), rank 0's CPU time per step (cpu_ms: the whole process, every thread;
// compute_cpu_ms: the thread that runs the step), DDP's own share of the step on rank 0 (ddp_*_ms:
// walking the graph after forward, copying gradients into buckets, launching the reductions, and
// waiting for them at the end of backward), and the first and last loss.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "bench/timing.h"
#include "bench/train_step_models.h"
#include "dist/ddp.h"
#include "dist/init.h"
#include "dtrain.h"

using dtrain::bench::Clock;
using dtrain::bench::milliseconds;
using dtrain::bench::process_cpu_milliseconds;
using dtrain::bench::thread_cpu_milliseconds;
using dtrain::bench::median;

namespace {

struct Arguments {
  int threads = 1;
  int steps = 20;
  int warmup = 3;
  double bucket_cap_mb = 25.0;
  bool ddp = true;
};

Arguments parse(int argc, char** argv) {
  Arguments arguments;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--no-ddp") {
      arguments.ddp = false;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "bench_ddp_scaling: %s needs a value\n", flag.c_str());
      std::exit(2);
    }
    const char* value = argv[++i];
    if (flag == "--threads") arguments.threads = std::atoi(value);
    else if (flag == "--steps") arguments.steps = std::atoi(value);
    else if (flag == "--warmup") arguments.warmup = std::atoi(value);
    else if (flag == "--bucket-cap-mb") arguments.bucket_cap_mb = std::atof(value);
    else {
      std::fprintf(stderr, "usage: bench_ddp_scaling [--threads N] [--steps N] [--warmup N] [--bucket-cap-mb MB] [--no-ddp]\n");
      std::exit(2);
    }
  }
  if (arguments.threads < 1 || arguments.steps < 1) {
    std::fprintf(stderr, "bench_ddp_scaling: expected --threads >= 1 and --steps >= 1\n");
    std::exit(2);
  }
  return arguments;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace dtrain;
  dist::init(&argc, &argv);
  const Arguments arguments = parse(argc, argv);
  const int rank = dist::rank();
  const int ranks = dist::world_size();
  if (!arguments.ddp && ranks != 1) {
    if (rank == 0) std::fprintf(stderr, "bench_ddp_scaling: --no-ddp runs on one process (got %d ranks)\n", ranks);
    dist::finalize();
    return 2;
  }
  set_num_threads(arguments.threads);

  manual_seed(0);
  const bench::GptShape shape;
  const int64_t batch_per_rank = 16;
  auto model = std::make_shared<bench::BenchGpt>(shape);
  std::unique_ptr<dist::DistributedDataParallel> ddp;
  if (arguments.ddp) {
    ddp = std::make_unique<dist::DistributedDataParallel>(
        model, dist::DistributedDataParallelOptions{.bucket_cap_mb = arguments.bucket_cap_mb});
  }
  optim::AdamW optimizer(model->parameters(), {.lr = 3e-4, .weight_decay = 0.1});
  // Each rank's own fixed batch.
  Generator data(1234 + static_cast<uint64_t>(rank));
  const double vocabulary = static_cast<double>(shape.vocabulary);
  Tensor inputs = uniform({batch_per_rank, shape.context}, 0, vocabulary, {}, &data).to(kInt64);
  Tensor targets = uniform({batch_per_rank, shape.context}, 0, vocabulary, {}, &data).to(kInt64);

  std::vector<double> step_ms, forward_ms, backward_ms, optimizer_ms, cpu_ms, compute_cpu_ms, walk_ms, copy_ms, launch_ms, wait_ms;
  double first_loss = 0, last_loss = 0;
  for (int i = 0; i < arguments.warmup + arguments.steps; ++i) {
    const Clock::time_point start = Clock::now();
    const double cpu_start = process_cpu_milliseconds();
    const double compute_cpu_start = thread_cpu_milliseconds();
    optimizer.zero_grad();
    Tensor logits = ddp ? (*ddp)(inputs) : (*model)(inputs);
    Tensor loss = cross_entropy(logits, targets);
    const Clock::time_point forward_done = Clock::now();
    loss.backward();  // with DDP: returns once the gradients are averaged
    const Clock::time_point backward_done = Clock::now();
    optimizer.step();
    const Clock::time_point end = Clock::now();
    const double cpu_end = process_cpu_milliseconds();
    const double compute_cpu_end = thread_cpu_milliseconds();
    if (i == 0) first_loss = loss.item();
    last_loss = loss.item();
    if (i < arguments.warmup) continue;
    step_ms.push_back(milliseconds(start, end));
    forward_ms.push_back(milliseconds(start, forward_done));
    backward_ms.push_back(milliseconds(forward_done, backward_done));
    optimizer_ms.push_back(milliseconds(backward_done, end));
    cpu_ms.push_back(cpu_end - cpu_start);
    compute_cpu_ms.push_back(compute_cpu_end - compute_cpu_start);
    if (ddp) {
      const dist::SynchronizationTimings& timings = ddp->last_synchronization_timings();
      walk_ms.push_back(timings.graph_walk_ms);
      copy_ms.push_back(timings.gradient_copy_ms);
      launch_ms.push_back(timings.launch_ms);
      wait_ms.push_back(timings.wait_ms);
    }
  }

  // A step is as slow as its slowest rank: each step's time is the maximum over ranks.
  Tensor slowest = from_vector(step_ms);
  if (ranks > 1) dist::world().all_reduce(slowest, dist::ReduceOp::Max)->wait();
  const std::vector<double> slowest_ms = slowest.to_vector<double>();
  if (!ddp) walk_ms = copy_ms = launch_ms = wait_ms = {0.0};
  if (rank == 0) {
    std::printf(
        "library=dtrain mode=%s ranks=%d threads=%d params=%lld buckets=%zu steps=%d median_ms=%.3f best_ms=%.3f forward_ms=%.3f "
        "backward_ms=%.3f optimizer_ms=%.3f cpu_ms=%.3f compute_cpu_ms=%.3f "
        "ddp_walk_ms=%.3f ddp_copy_ms=%.3f ddp_launch_ms=%.3f ddp_wait_ms=%.3f first_loss=%.4f last_loss=%.4f\n",
        ddp ? "ddp" : "plain", ranks, arguments.threads, static_cast<long long>(model->parameter_count()),
        ddp ? ddp->bucket_parameter_names().size() : size_t{0}, arguments.steps, median(slowest_ms), *std::min_element(slowest_ms.begin(), slowest_ms.end()), median(forward_ms),
        median(backward_ms), median(optimizer_ms), median(cpu_ms), median(compute_cpu_ms), median(walk_ms), median(copy_ms),
        median(launch_ms), median(wait_ms), first_loss, last_loss);
    std::fflush(stdout);
  }
  ddp.reset();
  dist::finalize();
  return 0;
}
