// Gradient buckets: how parameters are assigned to them, that gradients live in them (views),
// and that their all-reduces start during backward rather than after it.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "dist/bucket_assignment.h"
#include "tests/dist/ddp_test_support.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;

namespace {
std::vector<BucketableTensor> float32_tensors(const std::vector<size_t>& nbytes) {
  std::vector<BucketableTensor> tensors;
  for (size_t size : nbytes) tensors.push_back({size, kFloat32, Device::cpu()});
  return tensors;
}
using Buckets = std::vector<std::vector<size_t>>;
}  // namespace

TEST_CASE("Bucket assignment: reverse registration order, a small first bucket, then the cap", "[ddp]") {
  // Five parameters of 400 bytes: the first bucket closes at 500 bytes, later ones at 1000.
  Buckets buckets = assign_gradient_buckets(float32_tensors({400, 400, 400, 400, 400}), 500, 1000);
  CHECK(buckets == Buckets{{4, 3}, {2, 1, 0}});
}

TEST_CASE("Bucket assignment: a cap of 0 gives every parameter its own bucket", "[ddp]") {
  CHECK(assign_gradient_buckets(float32_tensors({4, 8, 12}), 0, 0) == Buckets{{2}, {1}, {0}});
}

TEST_CASE("Bucket assignment: a huge cap gives one bucket", "[ddp]") {
  CHECK(assign_gradient_buckets(float32_tensors({4, 8, 12}), 1 << 30, 1 << 30) == Buckets{{2, 1, 0}});
}

TEST_CASE("Bucket assignment: one dtype per bucket, buckets ordered by their first parameter", "[ddp]") {
  std::vector<BucketableTensor> tensors = {
      {8, kFloat64, Device::cpu()}, {4, kFloat32, Device::cpu()}, {4, kFloat32, Device::cpu()},
      {8, kFloat64, Device::cpu()}, {4, kFloat32, Device::cpu()}};
  CHECK(assign_gradient_buckets(tensors, 1 << 20, 1 << 20) == Buckets{{4, 2, 1}, {3, 0}});
}

TEST_CASE("DDP buckets hold the last layers first and are the same on every rank", "[ddp]") {
  std::shared_ptr<Module> model = make_mlp(kFloat32, 1);
  DistributedDataParallel each(model, {.bucket_cap_mb = 0.0, .first_bucket_cap_mb = 0.0});
  std::vector<std::vector<std::string>> names = each.bucket_parameter_names();
  REQUIRE(names.size() == 6);
  CHECK(names.front() == std::vector<std::string>{"4.bias"});
  CHECK(names.back() == std::vector<std::string>{"0.weight"});
}

TEST_CASE("DDP gradients are views into the bucket buffer", "[ddp]") {
  std::shared_ptr<Module> model = make_mlp(kFloat64, 1);
  DistributedDataParallel ddp(model, {.bucket_cap_mb = 1e6, .first_bucket_cap_mb = 1e6});  // one bucket
  for (int step = 0; step < 2; ++step) {
    model->zero_grad();
    Batch mine = rows_of(mlp_batch(step, 2 * world().size(), kFloat64), 2 * world().rank(), 2);
    cross_entropy(ddp(mine.inputs), mine.targets).backward();
    std::set<const Storage*> storages;
    for (const Tensor& parameter : model->parameters()) storages.insert(parameter.grad().storage().get());
    CHECK(storages.size() == 1);
    // Backward finished the synchronisation itself: asking again changes nothing.
    std::vector<double> before = model->parameters().front().grad().to_vector<double>();
    ddp.finish_gradient_synchronization();
    CHECK(model->parameters().front().grad().to_vector<double>() == before);
  }
}

TEST_CASE("DDP starts a bucket's all-reduce during backward, in bucket order", "[ddp]") {
  std::shared_ptr<Module> model = make_mlp(kFloat64, 1);
  DistributedDataParallel ddp(model, {.bucket_cap_mb = 0.0, .first_bucket_cap_mb = 0.0});
  Tensor first_weight = model->named_parameters().front().second;  // its gradient comes last
  std::vector<bool> first_weight_ready_at_launch;
  std::vector<int64_t> launched_sizes;
  ddp.register_comm_hook([&](ProcessGroup& group, HookBucket& bucket) {
    first_weight_ready_at_launch.push_back(first_weight.grad().defined());
    launched_sizes.push_back(bucket.buffer.numel());
    return allreduce_hook(group, bucket);
  });
  model->zero_grad();
  Batch mine = rows_of(mlp_batch(0, 2 * world().size(), kFloat64), 2 * world().rank(), 2);
  cross_entropy(ddp(mine.inputs), mine.targets).backward();
  REQUIRE(first_weight_ready_at_launch.size() == 6);
  CHECK_FALSE(first_weight_ready_at_launch.front());  // backward had not reached layer 0 yet
  CHECK(launched_sizes == std::vector<int64_t>{kMlpClasses, kMlpClasses * 10, 10, 100, 10, 10 * kMlpInputs});
}
