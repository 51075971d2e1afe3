// Compression hooks: all-reducing in bf16 (fp16) must give the uncompressed average to within
// what those formats can hold, and must really use them (the result differs from float32's).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <memory>
#include <vector>

#include "tests/dist/ddp_test_support.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;

namespace {

// The averaged gradients of one backward of the GPT, each parameter's flattened, in order.
std::vector<Tensor> averaged_gradients(const CommunicationHook& hook) {
  std::shared_ptr<Module> model = make_gpt(kFloat32, 5);
  DistributedDataParallel ddp(model, {.first_bucket_cap_mb = 0.0});
  if (hook) ddp.register_comm_hook(hook);
  Batch mine = rows_of(gpt_batch(0, 2 * world().size(), kFloat32), 2 * world().rank(), 2);
  cross_entropy(ddp(mine.inputs), mine.targets).backward();
  std::vector<Tensor> gradients;
  for (const Tensor& parameter : model->parameters()) gradients.push_back(parameter.grad().clone());
  return gradients;
}

// unit_roundoff: half the spacing of the format's numbers near 1; smallest_step: the spacing of
// its subnormals (fp16 cannot hold the tiniest gradients at their full relative precision).
void check_compressed(const CommunicationHook& hook, double unit_roundoff, double smallest_step) {
  std::vector<Tensor> exact = averaged_gradients(nullptr);
  std::vector<Tensor> compressed = averaged_gradients(hook);
  REQUIRE(exact.size() == compressed.size());
  const double ranks = world().size();
  bool any_rounded = false;
  for (size_t i = 0; i < exact.size(); ++i) {
    std::vector<double> e = exact[i].to_vector<double>();
    std::vector<double> c = compressed[i].to_vector<double>();
    double scale = 0;
    for (double value : e) scale = std::max(scale, std::abs(value));
    for (size_t j = 0; j < e.size(); ++j) {
      // Each rank's share is rounded once, and every partial sum of at most `ranks` shares once
      // more: at most (ranks + 1) roundings of numbers no larger than the largest gradient.
      INFO("parameter " << i << ", element " << j << ": compressed " << c[j] << ", exact " << e[j]);
      CHECK(std::abs(c[j] - e[j]) <= (ranks + 1) * (unit_roundoff * scale + smallest_step));
      any_rounded = any_rounded || c[j] != e[j];
    }
  }
  CHECK(any_rounded);
}

}  // namespace

TEST_CASE("DDP bf16 compression hook: the average within bf16 rounding", "[ddp]") {
  check_compressed(bf16_compress_hook, std::ldexp(1.0, -8), std::ldexp(1.0, -133));
}

TEST_CASE("DDP fp16 compression hook: the average within fp16 rounding", "[ddp]") {
  check_compressed(fp16_compress_hook, std::ldexp(1.0, -11), std::ldexp(1.0, -24));
}
