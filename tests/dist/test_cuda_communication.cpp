// The choice of a group's CUDA backend (pure, from every rank's facts) and the staged backend,
// which runs here on CPU tensors over the world's CPU backend (MPI under mpirun): the same code
// path a group of several ranks on one GPU takes for CUDA tensors.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "core/core.h"
#include "dist/cuda_communication.h"
#include "dist/init.h"
#include "dist/staged_backend.h"
#include "tests/support/scoped_environment.h"

using namespace dtrain;
using namespace dtrain::dist;
using dtrain::test::ScopedEnvironment;

namespace {

// rank r's values: (r + 1) * (i + 1) for i in [0, count).
std::vector<double> rank_values(int rank, int64_t count) {
  std::vector<double> values(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) values[static_cast<size_t>(i)] = (rank + 1) * static_cast<double>(i + 1);
  return values;
}

}  // namespace

TEST_CASE("CUDA backend choice: NCCL when every rank has its own GPU and loads NCCL", "[dist][cuda-communication]") {
  // Two nodes with two GPUs each: device indices repeat across nodes, which is fine.
  std::vector<RankPlacement> ranks{{0, 0, true}, {0, 1, true}, {1, 0, true}, {1, 1, true}};
  CudaCommunicationChoice choice = choose_cuda_communication(ranks, CudaCommunication::Auto);
  CHECK(choice.use_nccl);
  CHECK(choice.reason.empty());
  CHECK(choose_cuda_communication(ranks, CudaCommunication::Nccl).use_nccl);
  CudaCommunicationChoice forced = choose_cuda_communication(ranks, CudaCommunication::Staged);
  CHECK_FALSE(forced.use_nccl);
  CHECK(forced.reason == "DTRAIN_CUDA_COMMUNICATION=staged");
}

TEST_CASE("CUDA backend choice: ranks sharing a GPU are staged, naming both ranks", "[dist][cuda-communication]") {
  std::vector<RankPlacement> ranks{{0, 0, true}, {0, 1, true}, {0, 1, true}};
  CudaCommunicationChoice choice = choose_cuda_communication(ranks, CudaCommunication::Auto);
  CHECK_FALSE(choice.use_nccl);
  CHECK(choice.reason == "ranks 1 and 2 of the group share cuda:1 on node 0 (NCCL needs one GPU per rank)");
  CHECK_THROWS_WITH(choose_cuda_communication(ranks, CudaCommunication::Nccl),
                    Catch::Contains("DTRAIN_CUDA_COMMUNICATION=nccl") && Catch::Contains("ranks 1 and 2"));
}

TEST_CASE("CUDA backend choice: a rank without the NCCL library makes the group staged", "[dist][cuda-communication]") {
  std::vector<RankPlacement> ranks{{0, 0, true}, {1, 0, false}};
  CudaCommunicationChoice choice = choose_cuda_communication(ranks, CudaCommunication::Auto);
  CHECK_FALSE(choice.use_nccl);
  CHECK(choice.reason == "rank 1 of the group cannot load NCCL");
  CHECK_THROWS_WITH(choose_cuda_communication(ranks, CudaCommunication::Nccl), Catch::Contains("cannot load NCCL"));
}

TEST_CASE("DTRAIN_CUDA_COMMUNICATION is read and checked", "[dist][cuda-communication]") {
  {
    ScopedEnvironment environment("DTRAIN_CUDA_COMMUNICATION", "staged");
    CHECK(cuda_communication_from_environment() == CudaCommunication::Staged);
  }
  {
    ScopedEnvironment environment("DTRAIN_CUDA_COMMUNICATION", "nccl");
    CHECK(cuda_communication_from_environment() == CudaCommunication::Nccl);
  }
  {
    ScopedEnvironment environment("DTRAIN_CUDA_COMMUNICATION", "");
    CHECK(cuda_communication_from_environment() == CudaCommunication::Auto);
  }
  ScopedEnvironment environment("DTRAIN_CUDA_COMMUNICATION", "gloo");
  CHECK_THROWS_WITH(cuda_communication_from_environment(), Catch::Contains("expected auto, nccl or staged, got 'gloo'"));
}

TEST_CASE("Staged backend: all_reduce, broadcast, all_gather and reduce_scatter equal their definitions",
          "[dist][cuda-communication]") {
  const int ranks = world().size();
  const int rank = world().rank();
  StagedBackend staged(world().backend_for(Device::cpu()));
  const int64_t count = 5;

  SECTION("all_reduce sum, average and max") {
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Average, ReduceOp::Max}) {
      Tensor tensor = from_vector(rank_values(rank, count), {count}, {.dtype = kFloat64});
      staged.all_reduce(tensor, op)->wait();
      const double rank_sum = ranks * (ranks + 1) / 2.0;  // sum of (r + 1)
      const double factor = op == ReduceOp::Sum ? rank_sum : op == ReduceOp::Average ? rank_sum / ranks : ranks;
      std::vector<double> got = tensor.to_vector<double>();
      for (int64_t i = 0; i < count; ++i) CHECK(got[i] == Approx(factor * (i + 1)).epsilon(1e-15));
    }
  }
  SECTION("broadcast from the last rank") {
    Tensor tensor = from_vector(rank_values(rank, count), {count}, {.dtype = kFloat64});
    staged.broadcast(tensor, ranks - 1)->wait();
    CHECK(tensor.to_vector<double>() == rank_values(ranks - 1, count));
  }
  SECTION("all_gather, also with the input in this rank's slot of the output") {
    std::vector<double> expected;
    for (int r = 0; r < ranks; ++r) {
      std::vector<double> part = rank_values(r, count);
      expected.insert(expected.end(), part.begin(), part.end());
    }
    Tensor input = from_vector(rank_values(rank, count), {count}, {.dtype = kFloat64});
    Tensor output = zeros({ranks * count}, {.dtype = kFloat64});
    staged.all_gather(input, output)->wait();
    CHECK(output.to_vector<double>() == expected);

    Tensor in_place = zeros({ranks * count}, {.dtype = kFloat64});
    Tensor slot = in_place.narrow(0, rank * count, count);
    slot.copy_(from_vector(rank_values(rank, count), {count}, {.dtype = kFloat64}));
    staged.all_gather(slot, in_place)->wait();
    CHECK(in_place.to_vector<double>() == expected);
  }
  SECTION("reduce_scatter sum, also into this rank's slot of the input") {
    // Every rank's input is rank_values over ranks * count elements; slot r is [r * count, ...).
    const double rank_sum = ranks * (ranks + 1) / 2.0;
    std::vector<double> expected(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) expected[i] = rank_sum * static_cast<double>(rank * count + i + 1);

    Tensor input = from_vector(rank_values(rank, ranks * count), {ranks * count}, {.dtype = kFloat64});
    Tensor output = zeros({count}, {.dtype = kFloat64});
    staged.reduce_scatter(input, output, ReduceOp::Sum)->wait();
    CHECK(output.to_vector<double>() == expected);

    Tensor own_slot = input.narrow(0, rank * count, count);
    staged.reduce_scatter(input, own_slot, ReduceOp::Sum)->wait();
    CHECK(own_slot.to_vector<double>() == expected);
  }
  SECTION("bfloat16 sums travel as bfloat16") {
    Tensor tensor = full({count}, 0.5 * (rank + 1), {.dtype = kBFloat16});
    staged.all_reduce(tensor, ReduceOp::Sum)->wait();
    for (double value : tensor.to_vector<double>()) CHECK(value == 0.5 * ranks * (ranks + 1) / 2.0);
  }
}
