// The compressions as DDP communication hooks on a small model: training still lowers the loss,
// the steps before start_step are plain DDP bitwise, a run resumed from saved state (model,
// optimizer, compression) continues bitwise, and make_gradient_compression's specs and errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/core.h"
#include "dist/compression/compression.h"
#include "optim/sgd.h"
#include "tests/dist/ddp_test_support.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;

namespace {

// Lossy settings for the tiny MLP: rank 1 (its 10 x 10 and 4 x 10 weights compress; the 10 x 6
// one is sent whole), int8, 1-bit, 30% of the values.
const std::vector<std::string> kSpecs = {"powersgd:1", "int8", "1bit", "topk:0.3"};

struct Run {
  std::shared_ptr<Module> model;
  std::unique_ptr<DistributedDataParallel> ddp;
  std::unique_ptr<optim::SGD> optimizer;
  std::shared_ptr<GradientCompression> compression;
};

// Small buckets, so the model spans several and each bucket's state is keyed by its index.
Run make_run(const std::string& spec, int64_t start_step) {
  Run run;
  run.model = make_mlp(kFloat32, 11);
  run.ddp = std::make_unique<DistributedDataParallel>(
      run.model, DistributedDataParallelOptions{.bucket_cap_mb = 0.0002, .first_bucket_cap_mb = 0.0002});
  run.optimizer = std::make_unique<optim::SGD>(run.model->parameters(), optim::SGDOptions{.lr = 0.1, .momentum = 0.9});
  if (!spec.empty()) {
    run.compression = make_gradient_compression(spec, start_step);
    run.ddp->register_comm_hook(as_hook(run.compression));
  }
  return run;
}

// One step on this rank's rows of the step's batch; returns the loss of this rank's rows.
double train_step(Run& run, int64_t step) {
  run.optimizer->zero_grad();
  Batch mine = rows_of(mlp_batch(step % 4, 8 * world().size(), kFloat32), 8 * world().rank(), 8);
  Tensor loss = cross_entropy((*run.ddp)(mine.inputs), mine.targets);
  loss.backward();
  run.optimizer->step();
  return loss.item();
}

std::vector<std::vector<float>> parameter_values(const Module& model) {
  std::vector<std::vector<float>> values;
  for (const Tensor& parameter : model.parameters()) values.push_back(parameter.to_vector<float>());
  return values;
}

std::vector<std::vector<float>> gradient_values(const Module& model) {
  std::vector<std::vector<float>> values;
  for (const Tensor& parameter : model.parameters()) values.push_back(parameter.grad().to_vector<float>());
  return values;
}

// The loss over the whole batches, the same on every rank.
double mean_loss(Run& run) {
  NoGradGuard no_grad;
  double total = 0;
  for (int64_t step = 0; step < 4; ++step) {
    Batch batch = mlp_batch(step, 8 * world().size(), kFloat32);
    total += cross_entropy((*run.model)(batch.inputs), batch.targets).item();
  }
  return total / 4;
}

// A 6 x 5 weight and its bias in one bucket.
HookBucket make_layer_bucket(DType dtype) {
  HookBucket bucket{.index = 0, .buffer = zeros({35}, {.dtype = dtype}), .gradients = {}, .is_last = true};
  bucket.gradients = {bucket.buffer.narrow(0, 0, 30).view({6, 5}), bucket.buffer.narrow(0, 30, 5)};
  return bucket;
}

Tensor rank_gradient_values(int64_t elements, int rank) {
  Generator generator(900 + static_cast<uint64_t>(rank));
  return randn({elements}, {}, &generator);
}

}  // namespace

TEST_CASE("DDP training with each compression lowers the loss of a small model", "[compression]") {
  Run plain = make_run("", 0);
  double initial = mean_loss(plain);
  for (int64_t step = 0; step < 60; ++step) train_step(plain, step);
  double plain_final = mean_loss(plain);
  for (const std::string& spec : kSpecs) {
    INFO(spec << ": initial loss " << initial << ", plain DDP's after 60 steps " << plain_final);
    Run run = make_run(spec, 0);
    CHECK(mean_loss(run) == initial);
    for (int64_t step = 0; step < 60; ++step) train_step(run, step);
    double final_loss = mean_loss(run);
    INFO("with " << run.compression->name() << ": " << final_loss);
    CHECK(final_loss < 0.9 * initial);
    // And most of the way plain DDP went (at 2 ranks plain DDP reaches 1.02 from 1.41 and the
    // compressions 1.02 to 1.06).
    CHECK(final_loss < plain_final + 0.25 * (initial - plain_final));
    // Every rank still holds the same model.
    std::vector<double> losses = gather_scalar(final_loss);
    for (double loss : losses) CHECK(loss == final_loss);
  }
}

TEST_CASE("DDP with a compression before its start_step is plain DDP, bitwise", "[compression]") {
  for (const std::string& spec : kSpecs) {
    INFO(spec);
    Run plain = make_run("", 0);
    Run compressed = make_run(spec, 2);
    for (int64_t step = 0; step < 3; ++step) {
      train_step(plain, step);
      train_step(compressed, step);
      bool same_gradients = gradient_values(*compressed.model) == gradient_values(*plain.model);
      CHECK(same_gradients == (step < 2));
    }
  }
}

// Save after k steps, train m more; fresh objects load the saved state and train the same m
// steps: the parameters agree bitwise. The compression starts at step 1, so the saved state holds
// its step counter, residuals (and PowerSGD's Q matrices and generator).
TEST_CASE("DDP with a compression resumes from saved state bitwise", "[compression]") {
  constexpr int64_t kBefore = 3;
  constexpr int64_t kAfter = 3;
  for (const std::string& spec : kSpecs) {
    INFO(spec);
    Run original = make_run(spec, 1);
    for (int64_t step = 0; step < kBefore; ++step) train_step(original, step);
    StateDict model_state;
    for (const auto& [name, tensor] : original.model->state_dict()) model_state.insert(name, tensor.clone());
    optim::StateDict optimizer_state = original.optimizer->state_dict();
    StateDict compression_state = original.compression->state_dict();
    CHECK(compression_state.contains("residual.0"));
    if (spec.rfind("powersgd", 0) == 0) CHECK(compression_state.contains("generator.offset"));
    for (int64_t step = kBefore; step < kBefore + kAfter; ++step) train_step(original, step);

    Run resumed = make_run(spec, 1);
    resumed.model->load_state_dict(model_state);
    resumed.optimizer->load_state_dict(optimizer_state);
    resumed.compression->load_state_dict(compression_state);
    CHECK(resumed.compression->steps() == kBefore);
    for (int64_t step = kBefore; step < kBefore + kAfter; ++step) train_step(resumed, step);
    CHECK(parameter_values(*resumed.model) == parameter_values(*original.model));
  }
}

TEST_CASE("make_gradient_compression: the accepted specs and named errors", "[compression]") {
  CHECK(make_gradient_compression("powersgd:4")->name() == "powersgd rank 4");
  CHECK(make_gradient_compression("int8")->name() == "int8");
  CHECK(make_gradient_compression("1bit")->name() == "1-bit");
  CHECK(make_gradient_compression("topk:0.01")->name() == "top-1%");
  CHECK(make_gradient_compression("int8", 5)->start_step() == 5);
  for (const char* bad : {"", "gzip", "powersgd", "powersgd:", "powersgd:0", "powersgd:-2", "powersgd:2.5",
                                 "powersgd:4x", "int8:2", "1bit:", "topk", "topk:0", "topk:1.5", "topk:abc", "topk:nan"}) {
    INFO("spec \"" << bad << "\"");
    CHECK_THROWS_WITH(make_gradient_compression(bad), Catch::Contains("expected one of \"powersgd:R\""));
  }
  CHECK_THROWS_WITH(make_gradient_compression("int8", -1), Catch::Contains("expected start_step >= 0, got -1"));
  CHECK_THROWS_WITH(QuantizedCompression(QuantizedOptions{.bits = 4}), Catch::Contains("expected bits = 8 (int8) or 1"));
  CHECK_THROWS_WITH(as_hook(nullptr), Catch::Contains("expected a gradient compression, got null"));
  // A state dict without the step counter is refused, naming it, and nothing changes.
  auto compression = make_gradient_compression("powersgd:2");
  CHECK_THROWS_WITH(compression->load_state_dict(StateDict()), Catch::Contains("missing key 'steps'") &&
                                                                    Catch::Contains("missing key 'generator.seed'"));
}

// What each compression hands to collectives for one bucket of a 256 x 128 float32 weight and its
// bias (32,896 values, 131,584 bytes for the exact all-reduce), from each format's definition:
//   powersgd:4  P (256 x 4) with the bias, then Q (128 x 4):  (1024 + 128 + 512) * 4 =  6,656
//   int8        129 chunk exponents + 8,224 words of 4 bytes: (129 + 8224) * 4       = 33,412
//   1bit        129 chunk scales + 1,028 words of 32 signs:   (129 + 1028) * 4       =  4,628
//   topk:0.01   329 = ceil(328.96) Int32 indices + values:    329 * 8                =  2,632
TEST_CASE("Payload bytes each compression hands to collectives for one layer", "[compression]") {
  const std::vector<std::pair<std::string, int64_t>> expected = {
      {"powersgd:4", 6656}, {"int8", 33412}, {"1bit", 4628}, {"topk:0.01", 2632}};
  for (const auto& [spec, bytes] : expected) {
    INFO(spec);
    std::shared_ptr<GradientCompression> compression = make_gradient_compression(spec, 1);
    HookBucket bucket{.index = 0, .buffer = zeros({256 * 128 + 128}), .gradients = {}, .is_last = true};
    bucket.gradients = {bucket.buffer.narrow(0, 0, 256 * 128).view({256, 128}), bucket.buffer.narrow(0, 256 * 128, 128)};
    Generator generator(5);
    for (int64_t step = 0; step < 2; ++step) {
      bucket.buffer.copy_(randn({256 * 128 + 128}, {}, &generator));
      compression->reduce(world(), bucket)->wait();
      // Step 0 is before start_step: the exact all-reduce.
      CHECK(compression->payload_bytes_last_step() == (step == 0 ? 131584 : bytes));
    }
  }
}

// bfloat16 gradients: the CPU-loop compressions work on a float32 copy, so their result is the
// float32 result on the same (bf16) values, rounded to bf16 once. PowerSGD works in bf16 itself
// (its Q drawn in float32): at full rank it must still be the average to bf16's precision.
TEST_CASE("Compressions of bfloat16 buckets", "[compression]") {
  const int64_t elements = 6 * 5 + 5;
  Tensor values = rank_gradient_values(elements, world().rank());
  for (const char* spec : {"int8", "1bit", "topk:0.3"}) {
    INFO(spec);
    HookBucket half = make_layer_bucket(kBFloat16);
    HookBucket single = make_layer_bucket(kFloat32);
    half.buffer.copy_(values);
    single.buffer.copy_(half.buffer);  // the same values, exactly
    make_gradient_compression(spec)->reduce(world(), half)->wait();
    make_gradient_compression(spec)->reduce(world(), single)->wait();
    CHECK(half.buffer.to_vector<float>() == single.buffer.to(kBFloat16).to_vector<float>());
  }
  auto powersgd = std::make_shared<PowerSgdCompression>(PowerSgdOptions{.rank = 5, .min_compression_rate = 0.0});
  HookBucket half = make_layer_bucket(kBFloat16);
  half.buffer.copy_(values);
  powersgd->reduce(world(), half)->wait();
  CHECK(powersgd->compressed_matrix_count(0) == 1);
  Tensor all = empty({elements * world().size()}, {.dtype = kBFloat16});
  world().all_gather(values.to(kBFloat16), all)->wait();
  std::vector<double> gathered = all.to_vector<double>();
  std::vector<double> result = half.buffer.to_vector<double>();
  std::vector<double> mean(elements, 0.0);
  for (int64_t i = 0; i < elements; ++i) {
    for (int rank = 0; rank < world().size(); ++rank) mean[i] += gathered[rank * elements + i] / world().size();
  }
  double largest = 0;
  for (double value : mean) largest = std::max(largest, std::abs(value));
  for (int64_t i = 0; i < elements; ++i) {
    // bf16 keeps 8 bits: P, Q and the products each round at 2^-9 relative, and P's columns lose
    // orthogonality by about that times the condition of the 6 x 5 matrix; 5% of the largest value
    // covers that, while a rank-1 result misses by the order of the values themselves.
    INFO("element " << i << ": " << result[i] << " against the average " << mean[i]);
    CHECK(std::abs(result[i] - mean[i]) <= 0.05 * largest);
  }
}
