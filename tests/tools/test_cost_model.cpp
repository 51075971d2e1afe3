// The cost model of dtrain-cost-model (tools/cost_model/): every expected value below was worked
// out by hand from the formulas in tools/cost_model/collective_cost.h and step_time.h (the
// arithmetic is in the comments), not by calling the code under test another way.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "tools/cost_model/collective_cost.h"
#include "tools/cost_model/model_shape.h"
#include "tools/cost_model/prediction_table.h"
#include "tools/cost_model/step_time.h"

using namespace dtrain::cost_model;

namespace {

// α = 1 ms, β = 1 ns/byte (1 GB/s): round numbers for the hand arithmetic.
const Link kSlow{1e-3, 1e-9};

Network flat_network(int64_t ranks) {
  Network network;
  network.ranks = ranks;
  network.inter_host = kSlow;
  network.intra_host = kSlow;
  return network;
}

// Ten 512 x 512 matrices: 1 MiB of fp32 each, 10,485,760 bytes in all.
ModelShape ten_matrices() { return square_matrices_shape(10 * 512 * 512, 512); }

// DDP buckets of 2 MiB after a first one of 1 MiB: 1 + 2+2+2+2 + 1 matrices = 6 buckets.
StepSettings small_buckets() {
  StepSettings settings;
  settings.bucket_cap_bytes = 2.0 * 1024 * 1024;
  settings.first_bucket_cap_bytes = 1.0 * 1024 * 1024;
  settings.zero_bucket_cap_bytes = 4.0 * 1024 * 1024;
  return settings;
}

constexpr double kTenMatricesBytes = 10485760.0;

}  // namespace

TEST_CASE("cost model: collective costs are the alpha-beta formulas", "[cost_model]") {
  // ring, N = 4, n = 1e6: 2*3*1e-3 + 2*(3/4)*1e6*1e-9 = 6e-3 + 1.5e-3
  CHECK(ring_all_reduce_seconds(kSlow, 4, 1e6) == Approx(7.5e-3));
  // tree, N = 4: 2*2*1e-3 + 1.5e-3; N = 5: ceil(log2 5) = 3: 6e-3 + 2*(4/5)*1e-3
  CHECK(tree_all_reduce_seconds(kSlow, 4, 1e6) == Approx(5.5e-3));
  CHECK(tree_all_reduce_seconds(kSlow, 5, 1e6) == Approx(7.6e-3));
  // all-gather, N = 4: 3*1e-3 + (3/4)*1e-3
  CHECK(ring_all_gather_seconds(kSlow, 4, 1e6) == Approx(3.75e-3));
  // One rank communicates nothing.
  CHECK(ring_all_reduce_seconds(kSlow, 1, 1e6) == 0);
  CHECK(tree_all_reduce_seconds(kSlow, 1, 1e6) == 0);
  CHECK(ring_all_gather_seconds(kSlow, 1, 1e6) == 0);
  // 1 Gbit/s is 8 ns per byte.
  CHECK(seconds_per_byte_from_bits_per_second(1e9) == Approx(8e-9));
}

TEST_CASE("cost model: hierarchical all-reduce pays the host link's latency per host, not per rank", "[cost_model]") {
  Network network;
  network.ranks = 8;
  network.ranks_per_host = 4;
  network.inter_host = kSlow;
  network.intra_host = {1e-6, 1e-10};
  network.all_reduce_algorithm = AllReduceAlgorithm::Hierarchical;
  // inside: 2*(3*1e-6 + (3/4)*1e6*1e-10) = 1.56e-4; between the 2 hosts: 2*1e-3 + 2*(1/2)*1e6*1e-9 = 3e-3
  CHECK(all_reduce_seconds(network, 1e6) == Approx(3.156e-3));
  // The flat ring runs at the host link's pace: 2*7*1e-3 + 2*(7/8)*1e-3
  network.all_reduce_algorithm = AllReduceAlgorithm::Ring;
  CHECK(all_reduce_seconds(network, 1e6) == Approx(15.75e-3));
  // Hierarchical all-gather: 3*1e-6 + (3/4)*1e-4 inside, 1e-3 + (1/2)*1e-3 between
  network.all_reduce_algorithm = AllReduceAlgorithm::Hierarchical;
  CHECK(all_gather_seconds(network, 1e6) == Approx(1.578e-3));
  // 8 hosts of one rank: between the hosts the tree's 2*3 latency steps beat the ring's 2*7:
  // 6e-3 + 2*(7/8)*1e-3; the all-gather's recursive doubling 3e-3 + (7/8)*1e-3.
  network.ranks_per_host = 1;
  CHECK(all_reduce_seconds(network, 1e6) == Approx(7.75e-3));
  CHECK(all_gather_seconds(network, 1e6) == Approx(3.875e-3));
  CHECK(tree_all_gather_seconds(kSlow, 8, 1e6) == Approx(3.875e-3));
}

TEST_CASE("cost model: the neighbour exchange does not grow with N", "[cost_model]") {
  // N = 2: one neighbour: 1e-3 + 1e6*1e-9; N >= 3: two: 1e-3 + 2e-3
  CHECK(neighbour_exchange_seconds(flat_network(2), 1e6) == Approx(2e-3));
  CHECK(neighbour_exchange_seconds(flat_network(8), 1e6) == Approx(3e-3));
  CHECK(neighbour_exchange_seconds(flat_network(1000), 1e6) == Approx(3e-3));
  CHECK(neighbour_exchange_seconds(flat_network(1), 1e6) == 0);
}

TEST_CASE("cost model: GPT parameter counts and modules", "[cost_model]") {
  // GPT-2 small with the vocabulary padded to 50304: 50304*768 + 1024*768 + 12*7,087,872 + 2*768,
  // a block being 2*768 + (2304*768 + 2304) + (768*768 + 768) + 2*768 + (3072*768 + 3072) + (768*3072 + 768).
  CHECK(gpt_model_shape(50304, 1024, 768, 12, 4).parameter_count() == 124475904);
  // The bench's model: 256*256 + 64*256 + 4*789,760 + 512
  const ModelShape bench = gpt_model_shape(256, 64, 256, 4, 4);
  CHECK(bench.parameter_count() == 3241472);
  CHECK(bench.modules.size() == 27);  // 2 embeddings, 6 per block, the final norm
  CHECK_THROWS_AS(gpt_model_shape(256, 64, 0, 4, 4), dtrain::Error);
}

TEST_CASE("cost model: square matrices and DDP's buckets", "[cost_model]") {
  const ModelShape remainder = square_matrices_shape(10, 3);
  CHECK(remainder.parameter_count() == 10);
  CHECK(remainder.modules.size() == 2);  // one 3 x 3, then a vector of 1
  CHECK(ten_matrices().modules.size() == 10);
  // Caps of 1 MiB first, 2 MiB after: 1, 2, 2, 2, 2, 1 matrices.
  const auto buckets = bucket_parameters(ten_matrices(), 4, 2.0 * 1024 * 1024, 1.0 * 1024 * 1024);
  REQUIRE(buckets.size() == 6);
  CHECK(buckets[0].size() == 1);
  CHECK(buckets[1].size() == 2);
  CHECK(buckets[5].size() == 1);
  // A cap of 0: a bucket per parameter.
  CHECK(bucket_parameters(ten_matrices(), 4, 0, 0).size() == 10);
  CHECK_THROWS_AS(square_matrices_shape(0, 3), dtrain::Error);
}

TEST_CASE("cost model: DDP's step hides up to its window under backward", "[cost_model]") {
  StepSettings settings = small_buckets();
  settings.compute_seconds = 0.090;
  settings.overlap = 0.5;
  // 6 buckets: 6*2*3*1e-3 + 2*(3/4)*10,485,760*1e-9 = 36e-3 + 15.72864e-3
  const StepPrediction ddp = predict_step(method_from_spec("ddp"), ten_matrices(), flat_network(4), settings);
  CHECK(ddp.communication_seconds == Approx(51.72864e-3));
  CHECK(ddp.collectives == 6);
  CHECK(ddp.payload_bytes == Approx(kTenMatricesBytes));
  CHECK(ddp.bytes_sent == Approx(1.5 * kTenMatricesBytes));
  // The last bucket (1 MiB) is exposed: 6e-3 + 1.5*1,048,576e-9 = 7.572864e-3; of the other
  // 44.155776e-3, min(0.5 * 44.155776 ms, 60 ms of backward) hides.
  CHECK(ddp.exposed_seconds == Approx(29.650752e-3));
  CHECK(ddp.step_seconds == Approx(119.650752e-3));
  // Full overlap, 30 ms of compute: only backward's 20 ms of the 44.155776 ms hide.
  settings.compute_seconds = 0.030;
  settings.overlap = 1;
  const StepPrediction short_step = predict_step(method_from_spec("ddp"), ten_matrices(), flat_network(4), settings);
  CHECK(short_step.exposed_seconds == Approx(31.72864e-3));
  CHECK(short_step.step_seconds == Approx(61.72864e-3));
}

TEST_CASE("cost model: ZeRO stages", "[cost_model]") {
  StepSettings settings = small_buckets();
  settings.compute_seconds = 0.1;
  // Stage 1 and 2: 4 MiB buckets (4, 4, 2 MiB): reduce-scatter 3*3*1e-3 + (3/4)*10,485,760e-9 and an
  // all-gather as long; nothing hidden at overlap 0.
  for (const char* stage : {"zero1", "zero2"}) {
    const StepPrediction zero = predict_step(method_from_spec(stage), ten_matrices(), flat_network(4), settings);
    CHECK(zero.communication_seconds == Approx(2 * 16.86432e-3));
    CHECK(zero.step_seconds == Approx(0.1 + 2 * 16.86432e-3));
    CHECK(zero.collectives == 6);
    CHECK(zero.payload_bytes == Approx(1.25 * kTenMatricesBytes));  // the full input, then a quarter
    CHECK(zero.bytes_sent == Approx(1.5 * kTenMatricesBytes));
  }
  // Stage 3: per module (10) a gather in forward, one in backward, a reduce-scatter:
  // 3 * (10*3*1e-3 + 7.86432e-3)
  const StepPrediction stage3 = predict_step(method_from_spec("zero3"), ten_matrices(), flat_network(4), settings);
  CHECK(stage3.communication_seconds == Approx(3 * 37.86432e-3));
  CHECK(stage3.collectives == 30);
  // Full overlap: the forward gathers hide under forward's 33.3 ms, the backward phases (75.7 ms)
  // under backward's 66.7 ms: 37.86432 - 33.333 + 75.72864 - 66.667 ms exposed.
  settings.overlap = 1;
  const StepPrediction hidden = predict_step(method_from_spec("zero3"), ten_matrices(), flat_network(4), settings);
  CHECK(hidden.exposed_seconds == Approx(3 * 37.86432e-3 - 0.1));
}

TEST_CASE("cost model: PowerSGD sends P and Q, or the matrix when rank r does not compress it", "[cost_model]") {
  StepSettings settings = small_buckets();
  // Rank 4: per 512 x 512 matrix P and Q of 512*4 floats each; 6 buckets, an all-reduce of P and one
  // of Q per bucket: 2 * (6*6e-3 + 1.5*81,920*1e-9), 81,920 = 10*2048*4 bytes.
  const StepPrediction rank4 = predict_step(method_from_spec("powersgd:4"), ten_matrices(), flat_network(4), settings);
  CHECK(rank4.collectives == 12);
  CHECK(rank4.payload_bytes == Approx(2 * 81920.0));
  CHECK(rank4.communication_seconds == Approx(72.24576e-3));
  // Rank 300: (512 + 512) * 300 >= 512*512, so every matrix goes uncompressed: DDP's cost.
  const StepPrediction rank300 = predict_step(method_from_spec("powersgd:300"), ten_matrices(), flat_network(4), settings);
  CHECK(rank300.collectives == 6);
  CHECK(rank300.communication_seconds == Approx(51.72864e-3));
}

TEST_CASE("cost model: quantized and top-k all-gathers grow with N", "[cost_model]") {
  StepSettings settings = small_buckets();
  // int8: a byte per element plus 4 per 256: buckets of 262,144 elements -> 266,240 bytes, of
  // 524,288 -> 532,480; per rank 2*266,240 + 4*532,480 = 2,662,400 handed over, 3 of them received.
  const StepPrediction int8 = predict_step(method_from_spec("int8"), ten_matrices(), flat_network(4), settings);
  CHECK(int8.payload_bytes == Approx(2662400.0));
  CHECK(int8.bytes_sent == Approx(3 * 2662400.0));
  // 6*3*1e-3 + (3/4)*4*2,662,400*1e-9
  CHECK(int8.communication_seconds == Approx(18e-3 + 7.9872e-3));
  // 1-bit: 262,144/8 + 4*1,024 = 36,864 and 65,536 + 4*2,048 = 73,728: 2*36,864 + 4*73,728
  const StepPrediction one_bit = predict_step(method_from_spec("1bit"), ten_matrices(), flat_network(4), settings);
  CHECK(one_bit.payload_bytes == Approx(368640.0));
  // top-1%: ceil(2621.44) = 2622 and ceil(5242.88) = 5243 kept, 8 bytes each: 2*20,976 + 4*41,944
  const StepPrediction top = predict_step(method_from_spec("topk:0.01"), ten_matrices(), flat_network(4), settings);
  CHECK(top.payload_bytes == Approx(209728.0));
  // At N = 8 the int8 gather receives 7 copies: (7/8)*8*2,662,400 bytes on the wire.
  const StepPrediction wide = predict_step(method_from_spec("int8"), ten_matrices(), flat_network(8), settings);
  CHECK(wide.bytes_sent == Approx(7 * 2662400.0));
}

TEST_CASE("cost model: local SGD and gossip", "[cost_model]") {
  StepSettings settings = small_buckets();
  settings.compute_seconds = 0.1;
  settings.overlap = 1;  // neither hides: both average after the optimizer step
  const StepPrediction local = predict_step(method_from_spec("local-sgd:8"), ten_matrices(), flat_network(4), settings);
  CHECK(local.communication_seconds == Approx(51.72864e-3 / 8));
  CHECK(local.exposed_seconds == Approx(51.72864e-3 / 8));
  CHECK(local.collectives == Approx(0.75));
  CHECK(local.payload_bytes == Approx(kTenMatricesBytes / 8));
  // Gossip at N = 4: per bucket 1e-3 + 2 * bytes * 1e-9: 6e-3 + 20.97152e-3, two copies sent.
  const StepPrediction gossip = predict_step(method_from_spec("gossip"), ten_matrices(), flat_network(4), settings);
  CHECK(gossip.communication_seconds == Approx(26.97152e-3));
  CHECK(gossip.step_seconds == Approx(0.1 + 26.97152e-3));
  CHECK(gossip.payload_bytes == Approx(2 * kTenMatricesBytes));
}

TEST_CASE("cost model: methods by name and settings out of range", "[cost_model]") {
  CHECK(method_from_spec("topk:0.01").setting == Approx(0.01));
  CHECK(method_from_spec("local-sgd:8").method == Method::LocalSgd);
  CHECK(default_methods().size() == 10);
  for (const char* bad : {"powersgd:0", "powersgd:2.5", "powersgd:x", "topk:2", "topk:0", "local-sgd:", "sgd", "zero4"}) {
    CHECK_THROWS_AS(method_from_spec(bad), dtrain::Error);
  }
  StepSettings settings;
  settings.overlap = 1.5;
  CHECK_THROWS_AS(predict_step(method_from_spec("ddp"), ten_matrices(), flat_network(4), settings), dtrain::Error);
  Network uneven = flat_network(6);
  uneven.ranks_per_host = 4;
  CHECK_THROWS_AS(predict_step(method_from_spec("ddp"), ten_matrices(), uneven, StepSettings{}), dtrain::Error);
  CHECK_THROWS_AS(all_reduce_algorithm_from_name("butterfly"), dtrain::Error);
}

TEST_CASE("cost model: the table's ratio to DDP", "[cost_model]") {
  StepPrediction ddp{"ddp", 1, 0, 0, 0, 0, 0.2};
  StepPrediction local{"local-sgd:8", 1, 0, 0, 0, 0, 0.05};
  const std::string table = step_time_table({ddp, local});
  CHECK(table.find("| ddp |") != std::string::npos);
  CHECK(table.find("| 200.00 | 1.00x |") != std::string::npos);
  CHECK(table.find("| 50.00 | 0.25x |") != std::string::npos);
}
