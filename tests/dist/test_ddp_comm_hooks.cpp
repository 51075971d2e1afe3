// Compression hooks: all-reducing in bf16 (fp16) must give the uncompressed average to within
// what those formats can hold, and must really use them (the result differs from float32's); and
// what a hook is handed for each bucket (index, per-parameter views, the last flag).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
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

TEST_CASE("DDP hands a hook each bucket's index, per-parameter views and the last flag", "[ddp]") {
  std::shared_ptr<Module> model = make_mlp(kFloat64, 3);
  DistributedDataParallel ddp(model, {.bucket_cap_mb = 0.0, .first_bucket_cap_mb = 0.0});
  std::vector<std::vector<std::string>> bucket_names = ddp.bucket_parameter_names();
  std::map<std::string, Shape> shape_of;
  for (const auto& [name, parameter] : model->named_parameters()) shape_of[name] = parameter.shape();
  for (int64_t step = 0; step < 2; ++step) {
    std::vector<size_t> indices;
    std::vector<bool> last_flags;
    ddp.register_comm_hook([&](ProcessGroup& group, HookBucket& bucket) {
      indices.push_back(bucket.index);
      last_flags.push_back(bucket.is_last);
      const std::vector<std::string>& names = bucket_names.at(bucket.index);
      REQUIRE(bucket.gradients.size() == names.size());
      int64_t offset = 0;
      for (size_t member = 0; member < names.size(); ++member) {
        const Tensor& gradient = bucket.gradients[member];
        CHECK(gradient.shape() == shape_of.at(names[member]));
        // A view of the buffer's bytes at its place: writing the buffer writes the gradient.
        CHECK(gradient.storage() == bucket.buffer.storage());
        CHECK(gradient.storage_offset() == bucket.buffer.storage_offset() + offset);
        offset += gradient.numel();
      }
      CHECK(offset == bucket.buffer.numel());
      return allreduce_hook(group, bucket);
    });
    model->zero_grad();
    Batch mine = rows_of(mlp_batch(step, 2 * world().size(), kFloat64), 2 * world().rank(), 2);
    cross_entropy(ddp(mine.inputs), mine.targets).backward();
    std::vector<size_t> expected_indices(bucket_names.size());
    for (size_t i = 0; i < expected_indices.size(); ++i) expected_indices[i] = i;
    CHECK(indices == expected_indices);
    std::vector<bool> expected_last(bucket_names.size(), false);
    expected_last.back() = true;
    CHECK(last_flags == expected_last);
  }
}
