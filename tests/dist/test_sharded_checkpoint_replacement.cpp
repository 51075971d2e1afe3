// How a sharded save replaces the checkpoint in its directory: each save's shards under names of
// their own, the index renamed last, and only then the files it does not name removed — the
// previous checkpoint's (v1 names too), and what crashed saves left — never a file outside
// dtrain's naming scheme. (tests/dist/run-checkpoint-crash.sh kills saves at every file
// operation; this file checks the same rules within one job.)
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "tests/dist/test_sharded_checkpoint_support.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;

namespace {

// Tensor "t" of 4 n elements, all equal to value; rank r saves [4 r, 4 r + 4).
std::vector<TensorFragment> filled_fragments(double value) {
  const int n = world().size();
  const int rank = world().rank();
  return {{"t", Shape{4 * n}, 4 * rank, full({4}, value, {.dtype = kFloat32})}};
}

void save_filled(const std::filesystem::path& dir, int64_t step) {
  save_sharded_checkpoint(dir, filled_fragments(static_cast<double>(step)), {.step = step}, &world());
}

// The checkpoint in dir, opened by every rank, is of `step` and holds step's values.
void check_holds(const std::filesystem::path& dir, int64_t step) {
  ShardedCheckpoint checkpoint = ShardedCheckpoint::open(dir, &world());
  CHECK(checkpoint.step() == step);
  CHECK(checkpoint.training_state().verified);
  std::vector<float> values = checkpoint.read("t").to_vector<float>();
  CHECK(std::all_of(values.begin(), values.end(), [&](float v) { return v == static_cast<float>(step); }));
}

std::vector<std::string> listing(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// index.json and the shards its index names, sorted.
std::vector<std::string> checkpoint_files(const std::filesystem::path& dir) {
  std::vector<std::string> names{"index.json"};
  for (const IndexedFile& file : read_index(dir).files) names.push_back(file.name);
  std::sort(names.begin(), names.end());
  return names;
}

void write_text(const std::filesystem::path& path, const std::string& text) { std::ofstream(path) << text; }

}  // namespace

TEST_CASE("The sharded checkpoint naming scheme: what a save may remove, and nothing else", "[sharded_checkpoint]") {
  for (const char* name : {"index.json", "index.json.tmp.123", "rank-00000-of-00002.safetensors",
                           "rank-00001-of-00002.0123456789abcdef.safetensors",
                           "rank-00001-of-00002.0123456789abcdef.safetensors.tmp.77",
                           "rank-00003-of-00004.safetensors.tmp.9"}) {
    INFO(name);
    CHECK(is_sharded_checkpoint_file_name(name));
  }
  for (const char* name : {"index.json.bak", "index.json.tmp.", "index.json.tmp.12a", "notes.txt", "model.safetensors",
                           "rank-0-of-2.safetensors", "rank-00000-of-00002.safetensors.bak",
                           "rank-00000-of-00002.0123456789ABCDEF.safetensors",
                           "rank-00000-of-00002.0123456789abcde.safetensors", "rank-00000-of-00002.x.safetensors",
                           "Rank-00000-of-00002.safetensors", "rank-00000-of-00002.safetensors.tmp.x"}) {
    INFO(name);
    CHECK_FALSE(is_sharded_checkpoint_file_name(name));
  }
  CHECK(shard_file_name(3, 4) == "rank-00003-of-00004.safetensors");
  CHECK(shard_file_name(3, 4, "0123456789abcdef") == "rank-00003-of-00004.0123456789abcdef.safetensors");
}

TEST_CASE("A sharded save writes shards of its own names and removes the previous ones after its index",
          "[sharded_checkpoint]") {
  SharedDirectory dir;
  save_filled(dir.path(), 1);
  const std::vector<std::string> first = checkpoint_files(dir.path());
  CHECK(first.size() == static_cast<size_t>(world().size()) + 1);
  save_filled(dir.path(), 2);
  const std::vector<std::string> second = checkpoint_files(dir.path());
  world().barrier()->wait();
  // Every shard name is new, and nothing of the first save is left.
  for (const std::string& name : second) {
    if (name != "index.json") CHECK(std::find(first.begin(), first.end(), name) == first.end());
  }
  CHECK(listing(dir.path()) == second);
  check_holds(dir.path(), 2);
}

TEST_CASE("A sharded save removes what crashed saves left, and no file outside the naming scheme",
          "[sharded_checkpoint]") {
  SharedDirectory dir;
  save_filled(dir.path(), 1);
  const std::vector<std::string> users{"notes.txt", "rank-00000-of-00002.safetensors.bak", "index.json.bak",
                                       "model.safetensors"};
  if (world().rank() == 0) {
    // A save killed after writing shards (no index names them), temporaries of killed writes,
    // and shards of an older v1 save by another number of ranks.
    for (const char* name : {"rank-00000-of-00009.00000000000000aa.safetensors",
                             "rank-00001-of-00002.00000000000000bb.safetensors.tmp.4242", "index.json.tmp.4243",
                             "rank-00000-of-00007.safetensors"}) {
      write_text(dir / name, "left by a crash");
    }
    for (const std::string& name : users) write_text(dir / name, "the user's");
  }
  world().barrier()->wait();
  save_filled(dir.path(), 2);
  std::vector<std::string> expected = checkpoint_files(dir.path());
  expected.insert(expected.end(), users.begin(), users.end());
  std::sort(expected.begin(), expected.end());
  world().barrier()->wait();
  CHECK(listing(dir.path()) == expected);
  check_holds(dir.path(), 2);
}

TEST_CASE("A v1 sharded checkpoint (shard names without the save id) loads, and the next save replaces it",
          "[sharded_checkpoint]") {
  SharedDirectory dir;
  save_filled(dir.path(), 4);
  // Rewritten as the format-v1 code wrote it: "format" v1 in the index and the shards, and the
  // shards named "rank-<r>-of-<n>.safetensors".
  if (world().rank() == 0) {
    CheckpointIndex index = read_index(dir.path());
    for (int rank = 0; rank < index.world_size; ++rank) {
      IndexedFile& file = index.files[static_cast<size_t>(rank)];
      SafetensorsFile shard = load_safetensors(dir / file.name);
      shard.metadata["format"] = kShardedCheckpointFormatV1;
      std::filesystem::remove(dir / file.name);
      file.name = shard_file_name(rank, index.world_size);
      save_safetensors(dir / file.name, shard.tensors, shard.metadata, {.checksums = false});
      file.bytes = std::filesystem::file_size(dir / file.name);
    }
    index.format = kShardedCheckpointFormatV1;
    write_index(dir.path(), index);
  }
  world().barrier()->wait();
  std::vector<std::string> v1_files{"index.json"};
  for (int rank = 0; rank < world().size(); ++rank) v1_files.push_back(shard_file_name(rank, world().size()));
  std::sort(v1_files.begin(), v1_files.end());
  CHECK(listing(dir.path()) == v1_files);
  CHECK(read_index(dir.path()).format == std::string(kShardedCheckpointFormatV1));
  check_holds(dir.path(), 4);

  save_filled(dir.path(), 5);
  world().barrier()->wait();
  CHECK(read_index(dir.path()).format == std::string(kShardedCheckpointFormat));
  CHECK(listing(dir.path()) == checkpoint_files(dir.path()));
  check_holds(dir.path(), 5);
}
