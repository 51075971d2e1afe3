// The NCCL backend on a communicator of one rank (all a single GPU allows NCCL), its stream
// ordering under injected delays, and the world group on CUDA tensors: local for a world of one,
// staged for several ranks on one GPU, NCCL for one GPU per rank — checked against formulas.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/dist/cuda/dist_cuda_test_support.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;

namespace {

// (r + 1) * (i + 1) + i / 8 for i in [0, count): distinct per rank and per element.
Tensor rank_tensor(int rank, int64_t count, DType dtype, Device device) {
  std::vector<double> values(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) values[i] = (rank + 1) * static_cast<double>(i + 1) + static_cast<double>(i) / 8;
  return from_vector(values, {count}, {.dtype = kFloat64}).to(dtype).to(device);
}

}  // namespace

TEST_CASE("cuda dist: NCCL library reports its version and a group of one carries every collective",
          "[cuda][nccl]") {
  INFO(dist::detail::nccl_library().version());
  CHECK(dist::detail::nccl_library().version().rfind("NCCL 2.", 0) == 0);
  std::shared_ptr<ProcessGroup> group = nccl_group_of_one();
  CHECK(std::string(group->backend_for(this_gpu()).name()) == "nccl");
  const Device gpu = this_gpu();

  for (DType dtype : {kFloat32, kFloat64, kBFloat16, kFloat16, kInt32, kInt64}) {
    INFO(dtype_name(dtype));
    Tensor expected = rank_tensor(0, 37, dtype, Device::cpu());
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max, ReduceOp::Average}) {
      if (op == ReduceOp::Average && !is_floating(dtype)) continue;
      Tensor tensor = rank_tensor(0, 37, dtype, gpu);
      group->all_reduce(tensor, op)->wait();
      CHECK(tensor.to(Device::cpu()).to_vector<double>() == expected.to_vector<double>());  // one rank: identity
    }
    Tensor broadcast = rank_tensor(0, 37, dtype, gpu);
    group->broadcast(broadcast, 0)->wait();
    CHECK(broadcast.to(Device::cpu()).to_vector<double>() == expected.to_vector<double>());

    Tensor gathered = zeros({37}, {.dtype = dtype, .device = gpu});
    group->all_gather(rank_tensor(0, 37, dtype, gpu), gathered)->wait();
    CHECK(gathered.to(Device::cpu()).to_vector<double>() == expected.to_vector<double>());

    Tensor scattered = zeros({37}, {.dtype = dtype, .device = gpu});
    group->reduce_scatter(rank_tensor(0, 37, dtype, gpu), scattered, ReduceOp::Sum)->wait();
    CHECK(scattered.to(Device::cpu()).to_vector<double>() == expected.to_vector<double>());

    Tensor in_place = rank_tensor(0, 37, dtype, gpu);  // output is the input's own (only) slot
    group->reduce_scatter(in_place, in_place, ReduceOp::Sum)->wait();
    CHECK(in_place.to(Device::cpu()).to_vector<double>() == expected.to_vector<double>());
  }
  Tensor flags = from_vector(std::vector<double>{0, 1, 1, 0}).to(kBool).to(gpu);
  group->all_reduce(flags, ReduceOp::Sum)->wait();
  CHECK(flags.to(Device::cpu()).to(kFloat64).to_vector<double>() == std::vector<double>{0, 1, 1, 0});
  group->barrier()->wait();
}

TEST_CASE("cuda dist: an NCCL collective reads what the kernels before it wrote and the kernels after wait() see its result",
          "[cuda][nccl][delays]") {
  // Delays of 20 ms on the compute stream before the collective (the producer looks slow) and on
  // the communication stream (the collective looks slow): without the events between the two
  // streams the gather would read stale input or the product below would read stale output.
  std::shared_ptr<ProcessGroup> group = nccl_group_of_one(20000);
  const Device gpu = this_gpu();
  const int64_t count = int64_t{1} << 22;
  Tensor source = rank_tensor(0, count, kFloat32, gpu);
  Tensor expected = mul(mul(source.to(Device::cpu()), 3.0), 2.0);
  for (int repeat = 0; repeat < 3; ++repeat) {
    Tensor produced = mul(source, 3.0);                        // queued on the compute stream
    Tensor output = empty({count}, {.dtype = kFloat32, .device = gpu});
    WorkHandle work = group->all_gather(produced, output);
    produced = Tensor();  // the Work keeps it until NCCL has read it
    Tensor scratch = full({count}, -1.0, {.dtype = kFloat32, .device = gpu});  // must not take its memory
    work->wait();
    Tensor doubled = mul(output, 2.0);
    CHECK(doubled.to(Device::cpu()).to_vector<float>() == expected.to_vector<float>());
  }
}

TEST_CASE("cuda dist: the world group carries CUDA tensors (local, staged or NCCL, as placement allows)",
          "[cuda][world]") {
  const int ranks = world().size();
  const int rank = world().rank();
  const Device gpu = this_gpu();
  const int64_t count = 11;

  Tensor tensor = rank_tensor(rank, count, kFloat64, gpu);
  world().all_reduce(tensor, ReduceOp::Sum)->wait();
  Tensor expected_sum = zeros({count}, {.dtype = kFloat64});
  for (int r = 0; r < ranks; ++r) expected_sum.add_(rank_tensor(r, count, kFloat64, Device::cpu()));
  CHECK(tensor.to(Device::cpu()).to_vector<double>() == expected_sum.to_vector<double>());

  const std::string backend = world().backend_for(gpu).name();
  if (ranks == 1) {
    CHECK(backend == "local");
  } else if (cuda::device_count() == 1) {
    CHECK(backend == "staged");  // every rank on the one GPU: NCCL would refuse
  } else {
    INFO("backend " << backend);
    CHECK((backend == "nccl" || backend == "staged"));
  }

  Tensor gathered = zeros({ranks * count}, {.dtype = kFloat64, .device = gpu});
  world().all_gather(rank_tensor(rank, count, kFloat64, gpu), gathered)->wait();
  std::vector<double> expected_gather;
  for (int r = 0; r < ranks; ++r) {
    std::vector<double> part = rank_tensor(r, count, kFloat64, Device::cpu()).to_vector<double>();
    expected_gather.insert(expected_gather.end(), part.begin(), part.end());
  }
  CHECK(gathered.to(Device::cpu()).to_vector<double>() == expected_gather);

  Tensor whole = rank_tensor(rank, ranks * count, kFloat64, gpu);
  Tensor own_slot = whole.narrow(0, rank * count, count);
  world().reduce_scatter(whole, own_slot, ReduceOp::Average)->wait();
  Tensor expected_average = zeros({ranks * count}, {.dtype = kFloat64});
  for (int r = 0; r < ranks; ++r) expected_average.add_(rank_tensor(r, ranks * count, kFloat64, Device::cpu()));
  expected_average.div_(static_cast<double>(ranks));
  std::vector<double> got = own_slot.to(Device::cpu()).to_vector<double>();
  std::vector<double> want = expected_average.narrow(0, rank * count, count).contiguous().to_vector<double>();
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == Approx(want[i]).epsilon(1e-14));

  Tensor from_last = rank_tensor(rank, count, kFloat64, gpu);
  world().broadcast(from_last, ranks - 1)->wait();
  CHECK(from_last.to(Device::cpu()).to_vector<double>() ==
        rank_tensor(ranks - 1, count, kFloat64, Device::cpu()).to_vector<double>());
}
