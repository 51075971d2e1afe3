// DDP and ZeRO stages 0-3 on CUDA tensors equal the same training on the CPU: the MLP of the DDP
// tests in float64, 8 AdamW steps, every rank its rows of one global batch. On GPU the model's
// communication goes through the world group (local, staged or NCCL) and through groups of one
// rank on NCCL and on the staged path (each rank alone, against the CPU with a group of one), so
// both paths run even on one GPU without mpirun. Registered a second time with DTRAIN_TEST_INJECT_DELAYS_US: the results must not
// change when collectives and forwards are slowed down.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dist/zero/zero.h"
#include "tests/dist/cuda/dist_cuda_test_support.h"
#include "tests/dist/ddp_test_support.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;

namespace {

const optim::AdamWOptions kAdamW{.lr = 1e-2, .weight_decay = 0.1};
constexpr int kSteps = 8;
constexpr int64_t kRowsPerRank = 3;
constexpr int kDdp = -1;  // as a stage: DistributedDataParallel and a plain AdamW

// Trains the MLP with DDP (stage kDdp) or ZeRO at stage on device, communicating through group,
// and returns the whole parameters on the CPU. offload: ZeroOptions::offload_optimizer, and checks
// that the optimizer state and the masters are on the host then.
std::vector<NamedTensor> train(int stage, Device device, const std::shared_ptr<ProcessGroup>& group,
                               bool offload = false) {
  const int ranks = group->size();
  const int rank = group->rank();
  std::shared_ptr<Module> model = make_mlp(kFloat64, 7 + static_cast<uint64_t>(rank));  // rank 0's wins
  model->to(device);
  std::function<Batch(int)> my_rows = [&](int step) {
    Batch mine = rows_of(mlp_batch(step, kRowsPerRank * ranks, kFloat64), kRowsPerRank * rank, kRowsPerRank);
    return Batch{mine.inputs.to(device), mine.targets.to(device)};
  };
  if (stage == kDdp) {
    // A bucket per parameter: the most collectives, overlapping backward the most.
    DistributedDataParallel ddp(model, {.bucket_cap_mb = 0, .first_bucket_cap_mb = 0, .process_group = group});
    optim::AdamW optimizer(model->parameters(), kAdamW);
    for (int step = 0; step < kSteps; ++step) {
      Batch batch = my_rows(step);
      optimizer.zero_grad();
      cross_entropy(ddp(batch.inputs), batch.targets).backward();
      optimizer.step();
    }
    return on_cpu(model->named_parameters());
  }
  ZeroOptimizer zero(model, zero_optimizer<optim::AdamW>(kAdamW),
                     {.stage = stage, .bucket_cap_mb = 0, .prefetch_mb = 1, .process_group = group,
                      .offload_optimizer = offload});
  for (int step = 0; step < kSteps; ++step) {
    Batch batch = my_rows(step);
    zero.zero_grad();
    zero.backward(cross_entropy(zero(batch.inputs), batch.targets));
    REQUIRE(zero.step());
  }
  if (offload) {
    for (const ShardedUnit& unit : zero.units()) CHECK(unit.master_shard.device().is_cpu());
    for (size_t piece = 0; piece < zero.optimizer().num_parameters(); ++piece) {
      for (const auto& [name, state] : zero.optimizer().state(piece).tensors) {
        INFO("optimizer state " << name);
        CHECK(state.device().is_cpu());
      }
    }
    for (const ShardedUnit& unit : zero.units()) CHECK(unit.compute_shard.device() == device);
  }
  std::vector<NamedTensor> result;
  for (const auto& [name, tensor] : zero.full_parameters()) result.emplace_back(name, tensor.to(Device::cpu()));
  return result;
}

void require_close(const std::vector<NamedTensor>& gpu, const std::vector<NamedTensor>& cpu, const std::string& what) {
  INFO(what);
  REQUIRE(gpu.size() == cpu.size());
  for (size_t i = 0; i < gpu.size(); ++i) {
    INFO("parameter " << cpu[i].first);
    REQUIRE(gpu[i].first == cpu[i].first);
    // float64 on both devices; the GPU sums in another order, and Adam divides by the gradients'
    // own size, so rounding differences grow to about 1e-12 over a few steps.
    CHECK(relative_difference(gpu[i].second, cpu[i].second) < 1e-9);
  }
}

void check_every_stage(const std::shared_ptr<ProcessGroup>& gpu_group, const std::shared_ptr<ProcessGroup>& cpu_group,
                       const std::string& groups) {
  for (int stage : {kDdp, 0, 1, 2, 3}) {
    const std::string what = (stage == kDdp ? std::string("DDP") : "ZeRO stage " + std::to_string(stage)) + ", " + groups;
    std::vector<NamedTensor> on_gpu = train(stage, this_gpu(), gpu_group);
    std::vector<NamedTensor> on_host = train(stage, Device::cpu(), cpu_group);
    require_close(on_gpu, on_host, what);
  }
}

}  // namespace

TEST_CASE("cuda dist: DDP and ZeRO stages 0-3 on GPU equal the CPU, through the world group", "[cuda][parity]") {
  std::string backend = world().size() == 1 ? "local" : "chosen at the first collective";
  check_every_stage(world_ptr(), world_ptr(), "world group (" + backend + ")");
}

TEST_CASE("cuda dist: DDP and ZeRO stages 0-3 on GPU equal the CPU, through NCCL groups of one", "[cuda][parity][nccl]") {
  check_every_stage(nccl_group_of_one(injected_delay_microseconds()), cpu_group_of_one(), "NCCL group of one rank");
}

TEST_CASE("cuda dist: DDP and ZeRO stages 0-3 on GPU equal the CPU, through staged groups of one", "[cuda][parity][staged]") {
  check_every_stage(staged_group_of_one(), cpu_group_of_one(), "staged group of one rank");
}

TEST_CASE("cuda dist: ZeRO-Offload keeps masters and optimizer state on the host and equals the CPU", "[cuda][parity][offload]") {
  for (int stage : {1, 2, 3}) {
    std::vector<NamedTensor> offloaded = train(stage, this_gpu(), world_ptr(), /*offload=*/true);
    std::vector<NamedTensor> on_host = train(stage, Device::cpu(), world_ptr());
    require_close(offloaded, on_host, "ZeRO-Offload stage " + std::to_string(stage) + ", world group");
  }
}
