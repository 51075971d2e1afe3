// DistributedDataParallelOptions::reduce_in_flight_cap_mb: a bucket's all-reduce is launched only
// once the buckets in flight leave room under the cap (the oldest are waited for first). With a
// bucket per parameter, nothing completes early in DDP's backward, so the bytes in flight are
// exactly the sum of every bucket without a cap and exactly the largest bucket with a cap of one
// byte — and the averaged gradients are the same either way, bit for bit.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <vector>

#include "tests/dist/ddp_test_support.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;

TEST_CASE("DDP's cap on bucket bytes in flight bounds them and leaves the averaged gradients alone", "[ddp]") {
  std::vector<std::vector<double>> gradients[2];
  size_t peak[2] = {0, 0};
  size_t largest_bytes = 0;
  size_t all_bytes = 0;
  for (int capped : {0, 1}) {
    std::shared_ptr<Module> model = make_mlp(kFloat64, 3);
    // 1e-6 MiB is one byte: every bucket goes alone.
    DistributedDataParallel ddp(model, {.bucket_cap_mb = 0,
                                        .first_bucket_cap_mb = 0,
                                        .reduce_in_flight_cap_mb = capped ? 1e-6 : 0.0});
    Batch batch = mlp_batch(world().rank(), 4, kFloat64);  // each rank its own rows
    cross_entropy(ddp(batch.inputs), batch.targets).backward();
    largest_bytes = 0;
    all_bytes = 0;
    for (const Tensor& parameter : model->parameters()) {
      gradients[capped].push_back(parameter.grad().to_vector<double>());
      largest_bytes = std::max(largest_bytes, parameter.nbytes());
      all_bytes += parameter.nbytes();
    }
    peak[capped] = ddp.peak_bucket_bytes_in_flight();
  }
  INFO("largest bucket " << largest_bytes << " B, all " << all_bytes << " B; peak in flight " << peak[0]
                         << " B uncapped, " << peak[1] << " B capped");
  CHECK(peak[0] == all_bytes);
  CHECK(peak[1] == largest_bytes);
  CHECK(gradients[0] == gradients[1]);
}
