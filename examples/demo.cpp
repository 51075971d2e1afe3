// demo: the smallest training loop dtrain can run — a two-layer network fitting y = sin(x)
// on [-3, 3], written with tensors and autograd alone. Run: build/demo [--steps N] [--seed S]
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "dtrain.h"

using namespace dtrain;

namespace {

struct Flags {
  int steps = 2000;
  uint64_t seed = 0;
  double lr = 0.05;
};

Flags parse(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    bool has_value = i + 1 < argc;
    if (flag == "--help") {
      std::printf("usage: demo [--steps N] [--seed S] [--lr LR]\n");
      std::exit(0);
    } else if (flag == "--steps" && has_value) {
      flags.steps = std::atoi(argv[++i]);
    } else if (flag == "--seed" && has_value) {
      flags.seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (flag == "--lr" && has_value) {
      flags.lr = std::atof(argv[++i]);
    } else {
      std::fprintf(stderr, "demo: unknown flag or missing value: %s (see --help)\n", flag.c_str());
      std::exit(2);
    }
  }
  return flags;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags = parse(argc, argv);
  manual_seed(flags.seed);
  const int64_t hidden = 64;
  // Parameters: leaves that require grad, initialised as PyTorch's Linear does.
  Tensor w1 = uniform({1, hidden}, -1.0, 1.0).set_requires_grad();
  Tensor b1 = uniform({hidden}, -1.0, 1.0).set_requires_grad();
  Tensor w2 = uniform({hidden, 1}, -0.125, 0.125).set_requires_grad();
  Tensor b2 = zeros({1}).set_requires_grad();
  std::vector<Tensor> parameters{w1, b1, w2, b2};

  Tensor x = arange(-3.0, 3.0, 0.05, {.dtype = kFloat32}).view({-1, 1});
  Tensor y = sin(x);
  for (int step = 1; step <= flags.steps; ++step) {
    Tensor prediction = matmul(tanh(matmul(x, w1) + b1), w2) + b2;
    Tensor loss = mean(square(prediction - y));
    for (Tensor& p : parameters) p.set_grad(Tensor());
    loss.backward();
    {
      NoGradGuard no_grad;  // plain SGD
      for (Tensor& p : parameters) p.add_(p.grad(), -flags.lr);
    }
    if (step == 1 || step % 500 == 0) std::printf("step %5d  loss %.6f\n", step, loss.item());
  }
  return 0;
}
