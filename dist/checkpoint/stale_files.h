#pragma once
// What a sharded save removes once its index is on disk: every file in the directory that
// belongs to dtrain's naming scheme for sharded checkpoints and that the new index does not
// name — the previous checkpoint's shards (v1 names too), shards of saves that crashed before
// their index was written, and temporaries of crashed writes. Nothing outside the scheme.
#include <filesystem>
#include <string>
#include <vector>

#include "dist/checkpoint/checkpoint_index.h"

namespace dtrain::dist {

// Whether file_name is one of the scheme's: "rank-<5 digits>-of-<5 digits>[.<save id>].safetensors"
// or "index.json", either optionally followed by ".tmp.<pid>".
bool is_sharded_checkpoint_file_name(const std::string& file_name);

// The scheme's files in dir that `kept` does not name (index.json itself is always kept), sorted.
std::vector<std::filesystem::path> stale_checkpoint_files(const std::filesystem::path& dir,
                                                          const CheckpointIndex& kept);

// Removes them (each removal is a checkpoint file operation, core/crash_test_switch.h); raises
// naming the first file it cannot remove.
void remove_stale_checkpoint_files(const std::filesystem::path& dir, const CheckpointIndex& kept);

}  // namespace dtrain::dist
