// The profiler on the GPU: backward() of a bfloat16 GPT step must queue its kernels without the
// host ever waiting for the device (a wait there stalls the launch queue and shows as idle GPU
// time), and the profiler must see such waits where they do happen.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <memory>
#include <sstream>
#include <vector>

#include "bench/train_step_models.h"
#include "dtrain.h"
#include "tests/cuda/cuda_test_support.h"

using namespace dtrain;
using dtrain::cuda_test::gpu;

TEST_CASE("cuda profiler: backward() of a bfloat16 GPT step makes no host synchronisation") {
  const bench::GptShape shape{.vocabulary = 256, .context = 64, .d_model = 128, .layers = 2, .heads = 4, .mlp_ratio = 4};
  const int64_t batch = 8;  // 512 tokens: the embedding gradient takes the sorted-rows index_add
  manual_seed(11);
  auto model = std::make_shared<bench::BenchGpt>(shape);
  model->to(gpu());
  model->to(kBFloat16);
  Tensor sequence = (rand({batch, shape.context + 1}) * static_cast<double>(shape.vocabulary)).to(kInt64);
  const Tensor tokens = sequence.narrow(1, 0, shape.context).contiguous().to(gpu());
  const Tensor targets = sequence.narrow(1, 1, shape.context).contiguous().to(gpu());
  optim::MasterWeightAdamW optimizer(model->parameters(), {.lr = 1e-3, .weight_decay = 0.01});

  // One whole step first: cuBLAS handles, cuDNN plans and the allocator's blocks exist after it.
  optimizer.zero_grad();
  cross_entropy((*model)(tokens), targets).backward();
  optimizer.step();

  optimizer.zero_grad();
  Tensor loss = cross_entropy((*model)(tokens), targets);
  profiler::Profile profile;
  loss.backward();
  profile.stop();

  std::ostringstream waits;
  for (const profiler::Mark& mark : profile.marks()) {
    if (mark.kind == profiler::MarkKind::HostSynchronization) waits << mark.what << " inside " << mark.inside << "; ";
  }
  INFO("host synchronisations in backward: " << waits.str() << "\n" << profile.table());
  CHECK(profile.host_synchronizations() == 0);

  // The profile saw the backward on the GPU: nodes, with CUDA-event times.
  int64_t nodes = 0, timed = 0;
  for (const profiler::Event& event : profile.events()) {
    nodes += event.kind == profiler::EventKind::Backward ? 1 : 0;
    timed += event.device_ms >= 0 && event.device.is_cuda() ? 1 : 0;
  }
  CHECK(nodes > 0);
  CHECK(timed > 0);

  // And a wait is counted where there is one: reading the loss on the host.
  profiler::Profile control;
  const double value = loss.to(kFloat32).item();
  control.stop();
  CHECK(std::isfinite(value));
  CHECK(control.host_synchronizations() >= 1);
}
