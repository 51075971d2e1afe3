#include "train/trainer_checkpoint_source.h"

#include <filesystem>

#include "core/safetensors.h"
#include "dist/checkpoint/sharded_checkpoint.h"
#include "train/checkpoint_rotation.h"
#include "train/checkpoint_metadata.h"

namespace dtrain::train {

std::string resolve_checkpoint_path(const std::string& path) {
  if (std::filesystem::is_directory(path) && !std::filesystem::exists(std::filesystem::path(path) / "index.json")) {
    if (auto newest = newest_rotated_checkpoint(path)) return newest->string();
  }
  return path;
}

std::map<std::string, std::string> checkpoint_run_metadata(const std::string& path) {
  if (std::filesystem::is_directory(path)) return dist::ShardedCheckpoint::open(path).training_state().metadata;
  std::string optimizer_name;
  return train::decode_checkpoint_metadata(read_safetensors_header(path).metadata, path, optimizer_name).metadata;
}

}  // namespace dtrain::train
