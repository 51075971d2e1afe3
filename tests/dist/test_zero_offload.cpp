// ZeroOptions::offload_optimizer on a CPU model: the model is on the host already, so nothing
// moves and training is bitwise what it is without the option (the GPU test in tests/dist/cuda/
// checks the offload itself). Under mpirun at 2 and 3 ranks, stages 1-3, fp32 and mixed bf16.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dist/zero/zero.h"
#include "tests/dist/ddp_test_support.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;

namespace {

std::vector<NamedTensor> train(int stage, std::optional<DType> compute_dtype, bool offload) {
  const int ranks = world().size();
  const int rank = world().rank();
  std::shared_ptr<Module> model = make_mlp(kFloat32, 7 + static_cast<uint64_t>(rank));
  ZeroOptimizer zero(model, zero_optimizer<optim::AdamW>(optim::AdamWOptions{.lr = 1e-2, .weight_decay = 0.1}),
                     {.stage = stage, .compute_dtype = compute_dtype, .bucket_cap_mb = 0, .offload_optimizer = offload});
  for (const ShardedUnit& unit : zero.units()) CHECK_FALSE(unit.offloaded);
  for (int step = 0; step < 5; ++step) {
    Batch mine = rows_of(mlp_batch(step, 3 * ranks, kFloat32), 3 * rank, 3);
    zero.zero_grad();
    zero.backward(cross_entropy(zero(mine.inputs.to(zero.compute_dtype())), mine.targets));
    REQUIRE(zero.step());
  }
  std::vector<NamedTensor> result;
  for (const auto& [name, tensor] : zero.full_parameters()) result.emplace_back(name, tensor);
  return result;
}

}  // namespace

TEST_CASE("ZeRO-Offload on a CPU model trains bitwise as without it", "[zero][offload]") {
  for (int stage : {1, 2, 3}) {
    for (std::optional<DType> compute_dtype : {std::optional<DType>(), std::optional<DType>(kBFloat16)}) {
      INFO("stage " << stage << (compute_dtype ? ", bfloat16 compute" : ", float32"));
      std::vector<NamedTensor> with = train(stage, compute_dtype, true);
      std::vector<NamedTensor> without = train(stage, compute_dtype, false);
      REQUIRE(with.size() == without.size());
      for (size_t i = 0; i < with.size(); ++i) {
        INFO(with[i].first);
        CHECK(with[i].first == without[i].first);
        CHECK(with[i].second.to_vector<float>() == without[i].second.to_vector<float>());
      }
    }
  }
}
