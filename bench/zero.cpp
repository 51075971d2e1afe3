// ZeRO: step time and per-rank memory of dist::ZeroOptimizer (stages 0-3) next to
// dist::DistributedDataParallel + AdamW, on the benchmark GPT (bench/train_step_models.h) trained
// with AdamW (lr 3e-4, weight decay 0.1). bench/zero.sh runs it at 2 and 4 ranks next to PyTorch
// (bench/zero_torch.py) and searches the largest model each stage trains under a memory cap.
//
//   mpirun -np N bench_zero [--stage 0|1|2|3 | --ddp] [--compute fp32|bf16] [--threads 1]
//                           [--steps 5] [--warmup 2] [--batch 4] [--context 64] [--d-model 512]
//                           [--layers 8] [--heads 8] [--memory-limit-mb MB] [--cap-setup]
//                           [--sharded-construction] [--bucket-cap-mb MB]
//                           [--reduce-in-flight-cap-mb MB] [--prefetch-mb MB]
//
// The model is bench::BenchGpt (bench/train_step_models.h).
//
// --memory-limit-mb caps the bytes tensors may hold on each rank (core/allocator.h,
// set_memory_limit) from the moment the model and its wrapper are built; with --cap-setup from
// before, so that building counts too. The setup peak is printed apart (setup_peak_bytes). By
// default every rank builds the whole model first; --sharded-construction (ZeRO only) builds it
// under a DeferredInit and lets ZeroOptimizer draw each unit into its shard
// (dist/zero/sharded_construction.h), and prints the bound its setup peak must stay within
// (setup_bound_bytes). A rank whose allocation does not fit prints `fits=0 ... error="..."` and
// exits with status 3, which makes mpirun end the job.
//
// Rank 0 prints one line of key=value pairs: the step's median and fastest milliseconds (a step's
// time is its slowest rank's) and its phases on rank 0 (forward with the loss — at stages 1-2 it
// also waits for the previous step's all-gathers, at stage 3 it gathers; backward, which at
// every stage and in DDP includes the gradient reductions; optimizer: zero.step() or AdamW), CPU
// time per step on rank 0 and cores_busy (every rank's CPU time over the step's wall time and the
// cores the job can use: well below 1, other work took cores; but Open MPI busy-polls, so a rank
// waiting for a descheduled peer counts as busy and 1 does not prove a quiet run), then memory,
// the maximum over ranks of: the peak bytes tensors held during training (peak_bytes; per tag:
// *_peak_bytes, each its own peak; forward does not tag activations, they count as other) and
// during setup, and max_rss_mb;
// the model state held after the last step by the rank that holds the most (model_state_bytes:
// parameters + gradients + optimizer state, padding included), the paper's formula for that rank
// (formula_bytes; DDP: 16Ψ) and its padding; formula_ok=1 when on every rank the model state less
// the padding equals the formula to the byte.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bench/timing.h"
#include "bench/train_step_models.h"
#include "dist/ddp.h"
#include "dist/init.h"
#include "dist/zero/zero.h"
#include "dtrain.h"

using dtrain::bench::Clock;
using dtrain::bench::milliseconds;
using dtrain::bench::process_cpu_milliseconds;
using dtrain::bench::median;

namespace {

struct Arguments {
  int stage = 1;  // -1: dist::DistributedDataParallel + AdamW
  bool bf16 = false;
  int threads = 1;
  int steps = 5;
  int warmup = 2;
  int64_t batch = 4;
  int64_t context = 64;
  int64_t d_model = 512;
  int64_t layers = 8;
  int64_t heads = 8;
  double memory_limit_mb = 0;  // 0: none
  bool cap_setup = false;      // the cap holds while building too
  bool sharded_construction = false;
  // ZeroOptions' communication sizes (MiB); unset: the library's defaults.
  std::optional<double> bucket_cap_mb;
  std::optional<double> reduce_in_flight_cap_mb;
  std::optional<double> prefetch_mb;
};

[[noreturn]] void usage(const char* problem) {
  std::fprintf(stderr,
               "bench_zero: %s\nusage: bench_zero [--stage 0|1|2|3 | --ddp] [--compute fp32|bf16] [--threads N] "
               "[--steps N] [--warmup N] [--batch N] [--context N] [--d-model N] [--layers N] [--heads N] "
               "[--memory-limit-mb MB] [--cap-setup] [--sharded-construction]\n",
               problem);
  std::exit(2);
}

Arguments parse(int argc, char** argv) {
  Arguments arguments;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--ddp") {
      arguments.stage = -1;
      continue;
    }
    if (flag == "--cap-setup" || flag == "--sharded-construction") {
      (flag == "--cap-setup" ? arguments.cap_setup : arguments.sharded_construction) = true;
      continue;
    }
    if (i + 1 >= argc) usage((flag + " needs a value").c_str());
    const std::string value = argv[++i];
    if (flag == "--stage") arguments.stage = std::atoi(value.c_str());
    else if (flag == "--compute") {
      if (value != "fp32" && value != "bf16") usage("--compute takes fp32 or bf16");
      arguments.bf16 = value == "bf16";
    } else if (flag == "--threads") arguments.threads = std::atoi(value.c_str());
    else if (flag == "--steps") arguments.steps = std::atoi(value.c_str());
    else if (flag == "--warmup") arguments.warmup = std::atoi(value.c_str());
    else if (flag == "--batch") arguments.batch = std::atoll(value.c_str());
    else if (flag == "--context") arguments.context = std::atoll(value.c_str());
    else if (flag == "--d-model") arguments.d_model = std::atoll(value.c_str());
    else if (flag == "--layers") arguments.layers = std::atoll(value.c_str());
    else if (flag == "--heads") arguments.heads = std::atoll(value.c_str());
    else if (flag == "--memory-limit-mb") arguments.memory_limit_mb = std::atof(value.c_str());
    else if (flag == "--bucket-cap-mb") arguments.bucket_cap_mb = std::atof(value.c_str());
    else if (flag == "--reduce-in-flight-cap-mb") arguments.reduce_in_flight_cap_mb = std::atof(value.c_str());
    else if (flag == "--prefetch-mb") arguments.prefetch_mb = std::atof(value.c_str());
    else usage(("unknown flag " + flag).c_str());
  }
  if (arguments.stage < -1 || arguments.stage > 3) usage("--stage takes 0, 1, 2 or 3");
  if (arguments.stage == -1 && arguments.bf16) usage("--compute bf16 is for ZeroOptimizer (--stage)");
  if (arguments.stage == -1 && arguments.sharded_construction) {
    usage("--sharded-construction is for ZeroOptimizer (--stage): DDP needs the whole model on every rank");
  }
  if (arguments.threads < 1 || arguments.steps < 1 || arguments.warmup < 0 || arguments.batch < 1 ||
      arguments.context < 1 || arguments.layers < 0 || arguments.heads < 1 ||
      arguments.d_model % arguments.heads != 0 || arguments.memory_limit_mb < 0) {
    usage("expected --threads, --steps, --batch, --context, --heads >= 1, --warmup, --layers, --memory-limit-mb >= 0 "
          "and --d-model a multiple of --heads");
  }
  return arguments;
}

double max_rss_megabytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux: KiB
}

// Element-wise maximum (or sum) of one vector over the ranks.
std::vector<double> over_ranks(std::vector<double> values, dtrain::dist::ReduceOp op) {
  using namespace dtrain;
  if (dist::world_size() == 1) return values;
  Tensor all = from_vector(values);
  dist::world().all_reduce(all, op)->wait();
  return all.to_vector<double>();
}

// What one rank holds of model state after a step, and the formula for it (ZeRO only).
struct ModelState {
  double held = 0;     // parameters + gradients + optimizer state, padding included
  double formula = 0;  // the paper's (0 for DDP: no formula object)
  double padding = 0;
  double formula_ok = 1;
};

ModelState zero_model_state(const dtrain::dist::ZeroOptimizer& zero) {
  const dtrain::dist::ZeroMemoryReport report = zero.memory_report();
  const dtrain::dist::ZeroModelStateBytes expected = report.expected();
  const bool ok = report.held.parameters - report.padding.parameters == expected.parameters &&
                  report.held.gradients - report.padding.gradients == expected.gradients &&
                  report.held.optimizer_state - report.padding.optimizer_state == expected.optimizer_state;
  return {static_cast<double>(report.held.total()), static_cast<double>(expected.total()),
          static_cast<double>(report.padding.total()), ok ? 1.0 : 0.0};
}

// DDP: what the allocator counts under the three model-state tags (the gradient buckets are
// counted as gradients). Its formula is the paper's DP one, 16Ψ for fp32 Adam.
ModelState tagged_model_state(int64_t parameter_count) {
  const dtrain::MemoryStats stats = dtrain::memory_stats();
  const double held = static_cast<double>(stats[dtrain::MemoryTag::Parameters].current +
                                          stats[dtrain::MemoryTag::Gradients].current +
                                          stats[dtrain::MemoryTag::OptimizerState].current);
  const double formula = 16.0 * static_cast<double>(parameter_count);
  return {held, formula, 0, held == formula ? 1.0 : 0.0};
}

}  // namespace

int main(int argc, char** argv) {
  using namespace dtrain;
  dist::init(&argc, &argv);
  const Arguments arguments = parse(argc, argv);
  const int rank = dist::rank();
  const int ranks = dist::world_size();
  set_num_threads(arguments.threads);

  // Setup: the whole model on every rank, then the wrapper (DDP, or ZeRO's shards and buffers);
  // or, with --sharded-construction, a deferred model that ZeroOptimizer draws unit by unit.
  const int64_t limit = static_cast<int64_t>(arguments.memory_limit_mb * 1024.0 * 1024.0);
  reset_peak_memory_stats();
  manual_seed(0);
  const bench::GptShape shape{.vocabulary = 256, .context = arguments.context, .d_model = arguments.d_model,
                              .layers = arguments.layers, .heads = arguments.heads, .mlp_ratio = 4};
  std::shared_ptr<Module> model;
  int64_t parameter_count = -1;
  std::unique_ptr<dist::DistributedDataParallel> ddp;
  std::unique_ptr<optim::AdamW> optimizer;
  std::unique_ptr<dist::ZeroOptimizer> zero;
  const optim::AdamWOptions adamw{.lr = 3e-4, .weight_decay = 0.1};
  // Out of the cap: say so and end the job (the other ranks may be waiting in a collective).
  auto report_out_of_cap = [&](const Error& error, double setup_peak) {
    std::string message = error.what();
    std::replace(message.begin(), message.end(), '"', '\'');
    std::replace(message.begin(), message.end(), '\n', ' ');
    std::printf("library=dtrain mode=%s stage=%d ranks=%d compute=%s params=%lld layers=%lld memory_limit_bytes=%lld "
                "cap_setup=%d sharded_construction=%d setup_peak_bytes=%.0f fits=0 rank=%d error=\"%s\"\n",
                arguments.stage < 0 ? "ddp" : "zero", arguments.stage, ranks, arguments.bf16 ? "bf16" : "fp32",
                static_cast<long long>(parameter_count), static_cast<long long>(arguments.layers),
                static_cast<long long>(limit), arguments.cap_setup ? 1 : 0, arguments.sharded_construction ? 1 : 0,
                setup_peak, rank, message.c_str());
    std::fflush(stdout);
    std::_Exit(3);
  };
  if (limit > 0 && arguments.cap_setup) set_memory_limit(Device::cpu(), limit);
  double setup_bound = 0;
  try {
    std::shared_ptr<const DeferredParameters> deferred;
    if (arguments.sharded_construction) {
      DeferredModel<bench::BenchGpt> built = build_deferred<bench::BenchGpt>(shape);
      model = built.model;
      deferred = built.parameters;
    } else {
      model = std::make_shared<bench::BenchGpt>(shape);
    }
    parameter_count = model->parameter_count();
    if (arguments.stage < 0) {
      ddp = std::make_unique<dist::DistributedDataParallel>(model);
      optimizer = std::make_unique<optim::AdamW>(model->parameters(), adamw);
    } else {
      dist::ZeroOptions options{.stage = arguments.stage};
      if (arguments.bf16) options.compute_dtype = kBFloat16;
      if (arguments.bucket_cap_mb) options.bucket_cap_mb = *arguments.bucket_cap_mb;
      if (arguments.reduce_in_flight_cap_mb) options.reduce_in_flight_cap_mb = *arguments.reduce_in_flight_cap_mb;
      if (arguments.prefetch_mb) options.prefetch_mb = *arguments.prefetch_mb;
      zero = std::make_unique<dist::ZeroOptimizer>(model, deferred, dist::zero_optimizer<optim::AdamW>(adamw), options);
      if (deferred) setup_bound = static_cast<double>(dist::sharded_setup_bound(*zero).total());
    }
  } catch (const Error& error) {
    if (limit <= 0 || !arguments.cap_setup) throw;
    report_out_of_cap(error, static_cast<double>(memory_stats().total.peak));
  }
  const double setup_peak = static_cast<double>(memory_stats().total.peak);

  Generator data(1234 + static_cast<uint64_t>(rank));
  const double vocabulary = static_cast<double>(shape.vocabulary);
  Tensor inputs = uniform({arguments.batch, shape.context}, 0, vocabulary, {}, &data).to(kInt64);
  Tensor targets = uniform({arguments.batch, shape.context}, 0, vocabulary, {}, &data).to(kInt64);

  reset_peak_memory_stats();
  if (limit > 0) set_memory_limit(Device::cpu(), limit);

  std::vector<double> step_ms, forward_ms, backward_ms, optimizer_ms, cpu_ms;
  double first_loss = 0, last_loss = 0;
  try {
    for (int i = 0; i < arguments.warmup + arguments.steps; ++i) {
      const Clock::time_point start = Clock::now();
      const double cpu_start = process_cpu_milliseconds();
      Tensor loss;
      Clock::time_point forward_done, backward_done;
      if (zero) {
        zero->zero_grad();
        loss = cross_entropy((*zero)(inputs), targets);
        forward_done = Clock::now();
        zero->backward(loss);
        backward_done = Clock::now();
        zero->step();
      } else {
        optimizer->zero_grad();
        loss = cross_entropy((*ddp)(inputs), targets);
        forward_done = Clock::now();
        loss.backward();
        backward_done = Clock::now();
        optimizer->step();
      }
      const Clock::time_point end = Clock::now();
      const double cpu_end = process_cpu_milliseconds();
      const double loss_value = loss.to(kFloat32).item();
      if (i == 0) first_loss = loss_value;
      last_loss = loss_value;
      if (i < arguments.warmup) continue;
      step_ms.push_back(milliseconds(start, end));
      forward_ms.push_back(milliseconds(start, forward_done));
      backward_ms.push_back(milliseconds(forward_done, backward_done));
      optimizer_ms.push_back(milliseconds(backward_done, end));
      cpu_ms.push_back(cpu_end - cpu_start);
    }
    if (zero) zero->wait_for_parameters();  // the last step's all-gathers belong to it
  } catch (const Error& error) {
    if (limit <= 0) throw;
    report_out_of_cap(error, setup_peak);
  }
  set_memory_limit(Device::cpu(), kNoMemoryLimit);

  const MemoryStats training = memory_stats();
  const ModelState state = zero ? zero_model_state(*zero) : tagged_model_state(parameter_count);
  const std::vector<double> maxima = over_ranks(
      {static_cast<double>(training.total.peak), static_cast<double>(training[MemoryTag::Parameters].peak),
       static_cast<double>(training[MemoryTag::Gradients].peak),
       static_cast<double>(training[MemoryTag::OptimizerState].peak),
       static_cast<double>(training[MemoryTag::Activations].peak),
       static_cast<double>(training[MemoryTag::Communication].peak),
       static_cast<double>(training[MemoryTag::Other].peak),
       setup_peak, -state.formula_ok, max_rss_megabytes(), setup_bound},
      dist::ReduceOp::Max);
  // The model state of the rank that holds the most, with its own formula and padding.
  std::vector<double> states(3 * static_cast<size_t>(ranks), 0.0);
  states[3 * rank] = state.held;
  states[3 * rank + 1] = state.formula;
  states[3 * rank + 2] = state.padding;
  states = over_ranks(states, dist::ReduceOp::Sum);
  size_t largest = 0;
  for (size_t r = 1; r < static_cast<size_t>(ranks); ++r) {
    if (states[3 * r] > states[3 * largest]) largest = r;
  }
  // A step is as slow as its slowest rank.
  const std::vector<double> slowest_ms = over_ranks(step_ms, dist::ReduceOp::Max);
  const double cpu_all_ranks = over_ranks({median(cpu_ms)}, dist::ReduceOp::Sum)[0];
  const double usable_cores =
      std::min<double>(ranks * arguments.threads, std::max(1u, std::thread::hardware_concurrency()));
  if (rank == 0) {
    std::printf(
        "library=dtrain mode=%s stage=%d ranks=%d compute=%s threads=%d params=%lld layers=%lld steps=%d "
        "median_ms=%.3f best_ms=%.3f forward_ms=%.3f backward_ms=%.3f optimizer_ms=%.3f cpu_ms=%.3f cores_busy=%.2f "
        "peak_bytes=%.0f parameters_peak_bytes=%.0f gradients_peak_bytes=%.0f optimizer_state_peak_bytes=%.0f "
        "activations_peak_bytes=%.0f communication_peak_bytes=%.0f other_peak_bytes=%.0f setup_peak_bytes=%.0f "
        "model_state_bytes=%.0f formula_bytes=%.0f padding_bytes=%.0f formula_ok=%d max_rss_mb=%.1f "
        "setup_bound_bytes=%.0f memory_limit_bytes=%lld cap_setup=%d sharded_construction=%d fits=1 "
        "first_loss=%.4f last_loss=%.4f\n",
        zero ? "zero" : "ddp", arguments.stage, ranks, arguments.bf16 ? "bf16" : "fp32", arguments.threads,
        static_cast<long long>(parameter_count), static_cast<long long>(arguments.layers), arguments.steps,
        median(slowest_ms), *std::min_element(slowest_ms.begin(), slowest_ms.end()), median(forward_ms),
        median(backward_ms), median(optimizer_ms), median(cpu_ms), cpu_all_ranks / median(slowest_ms) / usable_cores,
        maxima[0], maxima[1], maxima[2], maxima[3], maxima[4], maxima[5], maxima[6], maxima[7],
        states[3 * largest], states[3 * largest + 1], states[3 * largest + 2], static_cast<int>(-maxima[8]), maxima[9],
        maxima[10], static_cast<long long>(limit), arguments.cap_setup ? 1 : 0, arguments.sharded_construction ? 1 : 0,
        first_loss,
        last_loss);
    std::fflush(stdout);
  }
  zero.reset();
  optimizer.reset();
  ddp.reset();
  dist::finalize();
  return 0;
}
