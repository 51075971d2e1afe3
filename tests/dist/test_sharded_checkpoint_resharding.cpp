// Sharded checkpoints written by N ranks and read by M, N and M in 1 .. world size: tensors of
// every dtype, cut at uneven places (empty runs included, runs not in rank order), read back in
// any range and compared with the values every element was given.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "tests/dist/test_sharded_checkpoint_support.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;

namespace {

struct SyntheticTensor {
  std::string name;
  Shape shape;
  DType dtype;
};

std::vector<SyntheticTensor> synthetic_tensors() {
  return {{"model.layer.weight", {7, 5}, kFloat32},
          {"model.layer.bias", {13}, kFloat64},
          {"model.embedding", {3, 3, 3}, kInt32},
          {"model.empty", {0, 3}, kFloat32},
          {"model.scale", {97}, kBFloat16},
          {"model.half", {9}, kFloat16},
          {"model.mask", {11}, kBool},
          {"optimizer.state.layer.weight.step", {}, kInt64},
          {"optimizer.param_groups.0.params", {4}, kInt64}};
}

// Element e of tensor t holds a value that names (t, e) and is exact in its dtype.
Tensor synthetic_value(const SyntheticTensor& tensor, int t) {
  std::vector<double> values(static_cast<size_t>(tensor.shape.numel()));
  for (size_t e = 0; e < values.size(); ++e) {
    const double index = static_cast<double>(e);
    if (tensor.dtype == kBool) {
      values[e] = (e * 7 + static_cast<size_t>(t)) % 3 == 0 ? 1.0 : 0.0;
    } else if (tensor.dtype == kBFloat16) {
      values[e] = index + t;  // below 256: exact in bfloat16's 8 significant bits
    } else if (is_floating(tensor.dtype)) {
      values[e] = t * 1000.0 + index + 0.25;
    } else {
      values[e] = t * 1000.0 + index;
    }
  }
  return from_vector(values, tensor.shape, {.dtype = kFloat64}).to(tensor.dtype);
}

// Cut points 0 = c_0 <= ... <= c_n = numel, uneven and with empty runs, different per tensor
// and per world size.
std::vector<int64_t> cut_points(int64_t numel, int n, int t) {
  std::vector<int64_t> cuts{0};
  uint64_t state = 2654435761u * static_cast<uint64_t>(t + 1) + static_cast<uint64_t>(n) * 97;
  for (int k = 1; k < n; ++k) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    cuts.push_back(std::max(cuts.back(), static_cast<int64_t>((state >> 33) % static_cast<uint64_t>(numel + 1))));
  }
  cuts.push_back(numel);
  std::sort(cuts.begin(), cuts.end());
  return cuts;
}

// Rank r of n holds run (r + t) % n of tensor t: runs are not in rank order.
std::vector<TensorFragment> synthetic_fragments(int rank, int n) {
  std::vector<TensorFragment> fragments;
  std::vector<SyntheticTensor> tensors = synthetic_tensors();
  for (int t = 0; t < static_cast<int>(tensors.size()); ++t) {
    const SyntheticTensor& tensor = tensors[static_cast<size_t>(t)];
    std::vector<int64_t> cuts = cut_points(tensor.shape.numel(), n, t);
    const size_t run = static_cast<size_t>((rank + t) % n);
    Tensor flat = synthetic_value(tensor, t).reshape({tensor.shape.numel()});
    fragments.push_back({tensor.name, tensor.shape, cuts[run], flat.narrow(0, cuts[run], cuts[run + 1] - cuts[run])});
  }
  return fragments;
}

train::TrainingState rank_state(int rank) {
  return {.step = 42,
          .generators = {{"default", {100 + static_cast<uint64_t>(rank), 4096 * static_cast<uint64_t>(rank)}}},
          .loaders = {{"train", {7, 2, 10 + rank}}},
          .metadata = {{"rank", std::to_string(rank)}, {"note", "synthetic"}}};
}

// Every tensor whole, and the ranges a reader at M ranks would take (its M near-equal runs, a
// range across every cut, single elements), compared byte for byte with the known values.
void check_reads(const ShardedCheckpoint& checkpoint, int reader, int readers) {
  std::vector<SyntheticTensor> tensors = synthetic_tensors();
  REQUIRE(checkpoint.names().size() == tensors.size());
  for (int t = 0; t < static_cast<int>(tensors.size()); ++t) {
    const SyntheticTensor& tensor = tensors[static_cast<size_t>(t)];
    INFO("tensor " << tensor.name);
    REQUIRE(checkpoint.contains(tensor.name));
    CHECK(checkpoint.shape(tensor.name) == tensor.shape);
    CHECK(checkpoint.dtype(tensor.name) == tensor.dtype);
    Tensor expected = synthetic_value(tensor, t);
    CHECK(same_bytes(checkpoint.read(tensor.name), expected));
    const int64_t numel = tensor.shape.numel();
    Tensor flat = expected.reshape({numel});
    std::vector<std::pair<int64_t, int64_t>> ranges{{numel * reader / readers, numel * (reader + 1) / readers},
                                                    {0, numel},
                                                    {numel / 3, numel - numel / 4},
                                                    {numel / 2, numel / 2}};
    for (int64_t e = 0; e < numel; e += 5) ranges.push_back({e, e + 1});
    for (const auto& [begin, end] : ranges) {
      INFO("elements [" << begin << ", " << end << ")");
      CHECK(same_bytes(checkpoint.read(tensor.name, begin, end), flat.narrow(0, begin, end - begin)));
    }
  }
}

}  // namespace

TEST_CASE("Sharded checkpoints saved at N ranks read back at M ranks in any range", "[sharded_checkpoint]") {
  auto groups = first_ranks_groups();
  const int world_size = world().size();
  // Blocks of 12 bytes: every fragment spans several checksum blocks that do not align with
  // elements; and the default (one block per fragment here).
  for (uint64_t block_bytes : {uint64_t{12}, kDefaultChecksumBlockBytes}) {
    for (int saved = 1; saved <= world_size; ++saved) {
      SharedDirectory dir;
      ProcessGroup* saving = groups[static_cast<size_t>(saved)].get();
      if (saving != nullptr) {
        save_sharded_checkpoint(dir.path(), synthetic_fragments(saving->rank(), saved), rank_state(saving->rank()),
                                saving, {.checksum_block_bytes = block_bytes});
      }
      world().barrier()->wait();
      for (int readers = 1; readers <= world_size; ++readers) {
        ProcessGroup* reading = groups[static_cast<size_t>(readers)].get();
        if (reading == nullptr) continue;
        INFO("saved by " << saved << " ranks, read by " << readers << ", checksum blocks of " << block_bytes
                         << " bytes");
        ShardedCheckpoint checkpoint = ShardedCheckpoint::open(dir.path(), reading);
        CHECK(checkpoint.saved_world_size() == saved);
        CHECK(checkpoint.step() == 42);
        check_reads(checkpoint, reading->rank(), readers);
        // The training state: this rank's own at the saved world size, rank 0's otherwise.
        const int expected_rank = readers == saved ? reading->rank() : 0;
        const train::TrainingState& state = checkpoint.training_state();
        CHECK(state.step == 42);
        CHECK(state.generator("default") == rank_state(expected_rank).generators.at("default"));
        CHECK(state.loader("train") == rank_state(expected_rank).loaders.at("train"));
        CHECK(state.metadata == rank_state(expected_rank).metadata);
      }
      world().barrier()->wait();
    }
  }
}

TEST_CASE("A sharded checkpoint saved and opened without a process group is one process's", "[sharded_checkpoint]") {
  SharedDirectory dir;
  if (world().rank() == 0) {
    save_sharded_checkpoint(dir.path(), synthetic_fragments(0, 1), rank_state(0));
    ShardedCheckpoint checkpoint = ShardedCheckpoint::open(dir.path());
    CHECK(checkpoint.saved_world_size() == 1);
    check_reads(checkpoint, 0, 1);
    CHECK(checkpoint.training_state().metadata == rank_state(0).metadata);
    checkpoint.verify();
    std::vector<std::string> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir.path()))
      files.push_back(entry.path().filename().string());
    std::sort(files.begin(), files.end());
    // Nothing else: no temporary file was left behind.
    CHECK(files == std::vector<std::string>{"index.json", "rank-00000-of-00001." + checkpoint.save_id() + ".safetensors"});
  }
}

TEST_CASE("A read opens only the shard files that hold the range", "[sharded_checkpoint]") {
  const int n = world().size();
  SharedDirectory dir;
  // Tensor "t" of 10 * n elements; rank r holds [10 r, 10 r + 10).
  const int64_t numel = 10 * n;
  Tensor whole = arange(numel, {.dtype = kFloat32});
  std::vector<TensorFragment> fragments{
      {"t", Shape{numel}, 10 * world().rank(), whole.narrow(0, 10 * world().rank(), 10)}};
  save_sharded_checkpoint(dir.path(), fragments, {.step = 3}, &world());
  ShardedCheckpoint checkpoint = ShardedCheckpoint::open(dir.path(), &world());
  const std::string last_shard = shard_file_name(n - 1, n, checkpoint.save_id());
  CHECK(checkpoint.files_for("t", 0, 10) ==
        std::vector<std::filesystem::path>{dir / shard_file_name(0, n, checkpoint.save_id())});
  CHECK(checkpoint.files_for("t", 5, 10 * n - 1).size() == static_cast<size_t>(n));
  world().barrier()->wait();
  // Without the last rank's file, everything the other files hold still reads.
  if (world().rank() == 0) std::filesystem::remove(dir / last_shard);
  world().barrier()->wait();
  ShardedCheckpoint reopened = ShardedCheckpoint::open(dir.path());  // no group: opens no shard itself
  if (n > 1) CHECK(same_bytes(reopened.read("t", 0, 10 * (n - 1)), whole.narrow(0, 0, 10 * (n - 1))));
  CHECK_THROWS_WITH(reopened.read("t", 10 * n - 1, 10 * n),
                    Catch::Matchers::Contains(last_shard) &&
                        Catch::Matchers::Contains("does not exist") &&
                        Catch::Matchers::Contains("reading tensor 't' elements [" + std::to_string(10 * n - 1)));
}
