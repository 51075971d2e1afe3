#pragma once
// The index of a sharded checkpoint (dist/checkpoint/checkpoint.h has the whole format): what
// every tensor is (dtype, shape) and where its elements are (which rank's shard file holds which
// run, with the run's block checksums), which save wrote the files (save id, step, file sizes),
// and the training state. Rank 0 writes it last, so a directory without it holds an unfinished
// save and is refused.
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/json.h"
#include "core/shape.h"
#include "train/training_state.h"

namespace dtrain::dist {

// v2: each save's shard files carry its save id in their names, so a save never overwrites the
// files of the checkpoint it replaces. v1 (read, no longer written): one name per rank and world
// size, "rank-00003-of-00004.safetensors".
inline constexpr const char* kShardedCheckpointFormat = "dtrain.sharded_checkpoint.v2";
inline constexpr const char* kShardedCheckpointFormatV1 = "dtrain.sharded_checkpoint.v1";
inline constexpr const char* kCheckpointIndexFileName = "index.json";

// "rank-00003-of-00004.0123456789abcdef.safetensors": rank 3's shard of the save with that id by
// 4 ranks. Without a save id, the v1 name "rank-00003-of-00004.safetensors".
std::string shard_file_name(int rank, int world_size, const std::string& save_id = "");

// Whether save_id is what a save makes: 16 lowercase hex digits (it becomes part of file names).
bool is_valid_save_id(const std::string& save_id);

// One rank's run [begin, end) of a tensor's elements (row-major), stored in that rank's file as
// a 1-D tensor under the tensor's name.
struct IndexedFragment {
  int rank = 0;
  int64_t begin = 0;
  int64_t end = 0;
  std::vector<uint32_t> checksums;  // CRC-32 of each checksum block of the run's bytes
};

struct IndexedTensor {
  DType dtype = kFloat32;
  Shape shape;
  std::vector<IndexedFragment> fragments;  // by begin; together they cover [0, numel) once
};

struct IndexedFile {
  std::string name;    // shard_file_name(rank, world_size)
  uint64_t bytes = 0;  // its size as written
};

struct CheckpointIndex {
  std::string format = kShardedCheckpointFormat;  // as read; a save writes the current one
  std::string save_id;  // random, shared by the index and every shard file of one save
  int64_t step = 0;     // the training step (TrainingState::step) of every rank
  int world_size = 1;
  uint64_t checksum_block_bytes = 0;
  std::vector<IndexedFile> files;  // by rank: shard_file_name(rank, world_size, save_id) (v1: without the id)
  std::map<std::string, IndexedTensor> tensors;
  train::TrainingState training_state;  // rank 0's; its step is `step`
};

// What a shard file's safetensors __metadata__ says about it: the save that wrote it, its rank's
// training state (generators and loaders may differ per rank) and, for a reader without the
// index, its fragments ("fragments": {"<name>": {"shape": [..], "begin": b}} as JSON).
struct ShardMetadata {
  std::string save_id;
  int64_t step = 0;
  int rank = 0;
  int world_size = 1;
  train::TrainingState training_state;  // without the step (that is `step`)
};

std::map<std::string, std::string> encode_shard_metadata(const ShardMetadata& shard, const std::string& fragments_json);
// Raises naming path and the bad key.
ShardMetadata decode_shard_metadata(const std::map<std::string, std::string>& metadata,
                                    const std::filesystem::path& path);

// The index as JSON text, and back. decode checks everything that does not need the shard files
// (format, types, fragments tiling each tensor, checksum counts, file names) and raises a
// dtrain::Error naming `path` and the offending key.
std::string encode_index(const CheckpointIndex& index);
CheckpointIndex decode_index(const std::string& text, const std::filesystem::path& path);

// dir/index.json, written atomically (core/atomic_file.h: a temporary file, fsync, rename, fsync
// of the directory): the instant of the rename is the instant the new checkpoint replaces the
// old one. Read back with a clear error when it does not exist (not a sharded checkpoint, or the
// first save into the directory did not finish).
void write_index(const std::filesystem::path& dir, const CheckpointIndex& index);
CheckpointIndex read_index(const std::filesystem::path& dir);

// A TrainingState without its step, as JSON (generators, loaders, metadata; 64-bit numbers
// exact), and back; decode raises naming `where` and the bad key.
JsonValue training_state_to_json(const train::TrainingState& state);
train::TrainingState training_state_from_json(const JsonValue& value, const std::string& where);

// The dtype a safetensors name ("F32") stands for; raises naming where for an unknown name.
DType dtype_from_safetensors_name(const std::string& name, const std::string& where);

}  // namespace dtrain::dist
