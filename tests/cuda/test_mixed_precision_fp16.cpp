// float16 training on the GPU with dynamic loss scaling and float32 masters against the same
// procedure on the CPU (tests/support/float16_training.h holds it and the hand-computed pattern).
#include <catch2/catch.hpp>

#include <cmath>

#include "tests/cuda/cuda_test_support.h"
#include "tests/support/float16_training.h"

using namespace dtrain;
using namespace dtrain::cuda_test;
using namespace dtrain::test;

TEST_CASE("cuda mixed precision: float16 with dynamic loss scaling skips exactly the overflowing steps and trains") {
  const Fp16Run gpu_run = train_float16(gpu());
  const Fp16Run cpu_run = train_float16(Device::cpu());
  require_float16_pattern(gpu_run);
  require_float16_pattern(cpu_run);
  for (int step = 0; step < kSteps; ++step) {
    INFO("step " << step << ": GPU loss " << gpu_run.steps[step].loss << ", CPU loss " << cpu_run.steps[step].loss);
    // float16 keeps 11 bits: the two devices' losses (computed in float16, with float32 masters)
    // stay within a couple of percent over the run.
    CHECK(std::fabs(gpu_run.steps[step].loss - cpu_run.steps[step].loss) <= 0.02 * cpu_run.steps[step].loss + 5e-3);
  }
}
