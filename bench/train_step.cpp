// One training step (zero_grad + forward + loss + backward + AdamW step) of a reference model in
// dtrain, timed. bench/train_step_torch.py is the same program in PyTorch and
// bench/train_step.sh runs the two side by side and prints the table.
//
//   bench_train_step --model gpt --threads 2 [--steps 20] [--warmup 3]
//
// Prints one line of key=value pairs: the median milliseconds of the whole step and of each
// phase (forward includes the loss), the parameter count, the first and last loss (a model that
// trains shows them falling; the data is fixed, so it is learned), and cores_busy: CPU time over
// wall time of the timed steps. At n threads it should read about n; less means other processes
// took cores during the run, and its times are not a fair comparison.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench/timing.h"
#include "bench/train_step_models.h"
#include "dtrain.h"

using dtrain::bench::Clock;
using dtrain::bench::milliseconds;
using dtrain::bench::median;

namespace {

struct Arguments {
  std::string model = "gpt";
  int threads = 1;
  int steps = 0;  // 0: the model's default
  int warmup = 3;
};

Arguments parse(int argc, char** argv) {
  Arguments arguments;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const char* value = argv[i + 1];
    if (flag == "--model") arguments.model = value;
    else if (flag == "--threads") arguments.threads = std::atoi(value);
    else if (flag == "--steps") arguments.steps = std::atoi(value);
    else if (flag == "--warmup") arguments.warmup = std::atoi(value);
    else {
      std::fprintf(stderr, "bench_train_step: unknown flag %s\n", flag.c_str());
      std::exit(2);
    }
  }
  if (argc % 2 == 0 || (arguments.model != "mlp" && arguments.model != "gpt") || arguments.threads < 1) {
    std::fprintf(stderr, "usage: bench_train_step --model mlp|gpt --threads N [--steps N] [--warmup N]\n");
    std::exit(2);
  }
  if (arguments.steps == 0) arguments.steps = arguments.model == "gpt" ? 20 : 50;
  return arguments;
}

double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec); };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// A model with its fixed batch.
struct Workload {
  std::shared_ptr<dtrain::Module> model;
  dtrain::Tensor inputs;
  dtrain::Tensor targets;
};

Workload make_workload(const std::string& name) {
  using namespace dtrain;
  Generator data(1234);
  if (name == "mlp") {
    const int64_t batch = 128;
    return {bench::make_mlp(), randn({batch, 784}, {}, &data),
            uniform({batch}, 0, 10, {}, &data).to(kInt64)};
  }
  const bench::GptShape shape;
  const int64_t batch = 16;
  return {std::make_shared<bench::BenchGpt>(shape),
          uniform({batch, shape.context}, 0, static_cast<double>(shape.vocabulary), {}, &data).to(kInt64),
          uniform({batch, shape.context}, 0, static_cast<double>(shape.vocabulary), {}, &data).to(kInt64)};
}

}  // namespace

int main(int argc, char** argv) {
  using namespace dtrain;
  const Arguments arguments = parse(argc, argv);
  set_num_threads(arguments.threads);
  manual_seed(0);
  Workload workload = make_workload(arguments.model);
  optim::AdamW optimizer(workload.model->parameters(), {.lr = 3e-4, .weight_decay = 0.1});

  std::vector<double> step_ms, forward_ms, backward_ms, optimizer_ms;
  double first_loss = 0, last_loss = 0;
  double busy_cpu_seconds = 0, busy_wall_ms = 0;
  for (int i = 0; i < arguments.warmup + arguments.steps; ++i) {
    const double cpu_start = cpu_seconds();
    const Clock::time_point start = Clock::now();
    optimizer.zero_grad();
    Tensor loss = cross_entropy((*workload.model)(workload.inputs), workload.targets);
    const Clock::time_point forward_done = Clock::now();
    loss.backward();
    const Clock::time_point backward_done = Clock::now();
    optimizer.step();
    const Clock::time_point end = Clock::now();
    const double cpu_end = cpu_seconds();
    if (i == 0) first_loss = loss.item();
    last_loss = loss.item();  // after the timed part: reading the loss is not part of a step
    if (i < arguments.warmup) continue;
    step_ms.push_back(milliseconds(start, end));
    busy_cpu_seconds += cpu_end - cpu_start;
    busy_wall_ms += milliseconds(start, end);
    forward_ms.push_back(milliseconds(start, forward_done));
    backward_ms.push_back(milliseconds(forward_done, backward_done));
    optimizer_ms.push_back(milliseconds(backward_done, end));
  }
  std::printf(
      "library=dtrain model=%s threads=%d params=%lld steps=%d median_ms=%.3f forward_ms=%.3f backward_ms=%.3f "
      "optimizer_ms=%.3f first_loss=%.4f last_loss=%.4f cores_busy=%.2f\n",
      arguments.model.c_str(), arguments.threads, static_cast<long long>(workload.model->parameter_count()),
      arguments.steps, median(step_ms), median(forward_ms), median(backward_ms), median(optimizer_ms), first_loss,
      last_loss, busy_cpu_seconds * 1e3 / busy_wall_ms);
  return 0;
}
