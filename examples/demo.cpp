// demo: the smallest training loop dtrain can run — a two-layer network fitting y = sin(x)
// on [-3, 3], written with tensors and autograd alone. Run: build/demo [--steps N] [--seed S]
// [--lr LR] (build/demo --help)
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "dtrain.h"
#include "tools/command_line/flags.h"
#include "tools/command_line/program_exit.h"

using namespace dtrain;

namespace {

void fit_sine(int argc, char** argv) {
  int64_t steps = 2000;
  uint64_t seed = 0;
  double lr = 0.05;
  command_line::FlagParser flags("demo",
                                 "Fits y = sin(x) on [-3, 3] with a two-layer network, tensors and autograd alone.");
  flags.add("steps", steps, "plain SGD steps");
  flags.add("seed", seed, "initialisation");
  flags.add("lr", lr, "learning rate");
  flags.parse(argc, argv);
  if (steps < 1) command_line::usage_error("--steps must be >= 1, got ", steps);
  manual_seed(seed);
  const int64_t hidden = 64;
  // Parameters: leaves that require grad, initialised as PyTorch's Linear does.
  Tensor w1 = uniform({1, hidden}, -1.0, 1.0).set_requires_grad();
  Tensor b1 = uniform({hidden}, -1.0, 1.0).set_requires_grad();
  Tensor w2 = uniform({hidden, 1}, -0.125, 0.125).set_requires_grad();
  Tensor b2 = zeros({1}).set_requires_grad();
  std::vector<Tensor> parameters{w1, b1, w2, b2};

  Tensor x = arange(-3.0, 3.0, 0.05, {.dtype = kFloat32}).view({-1, 1});
  Tensor y = sin(x);
  for (int64_t step = 1; step <= steps; ++step) {
    Tensor prediction = matmul(tanh(matmul(x, w1) + b1), w2) + b2;
    Tensor loss = mean(square(prediction - y));
    for (Tensor& p : parameters) p.set_grad(Tensor());
    loss.backward();
    {
      NoGradGuard no_grad;  // plain SGD
      for (Tensor& p : parameters) p.add_(p.grad(), -lr);
    }
    if (step == 1 || step % 500 == 0) std::printf("step %5lld  loss %.6f\n", static_cast<long long>(step), loss.item());
  }
}

}  // namespace

int main(int argc, char** argv) {
  return command_line::run_program("demo", [&] { fit_sine(argc, argv); });
}
