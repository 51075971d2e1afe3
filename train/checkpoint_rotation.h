#pragma once
// Checkpoint rotation (an example's --keep-checkpoints K, TrainerOptions::keep_checkpoints): checkpoints as one sharded directory per save,
// <root>/step-<8 digits>, of which the newest K complete ones are kept. Each save writes a new
// directory, so it never touches the ones kept (and is crash-safe in itself,
// dist/checkpoint/sharded_save.h); the oldest are removed only after the new one is complete.
// --resume <root> continues from the newest complete one.
#include <cstdint>
#include <filesystem>
#include <optional>

namespace dtrain::train {

// root/step-00000042 for step 42.
std::filesystem::path rotated_checkpoint_dir(const std::filesystem::path& root, int64_t step);

// The newest step directory under root that holds a complete checkpoint (its index.json), if any.
std::optional<std::filesystem::path> newest_rotated_checkpoint(const std::filesystem::path& root);

// Removes all but the newest `keep` complete checkpoints under root, and the step directories
// without an index (saves that crashed) older than the newest complete one. Each directory loses
// its index first, so one half removed by a crash reads as incomplete, never as a checkpoint.
// Touches nothing under root but "step-<digits>" directories.
void remove_old_rotated_checkpoints(const std::filesystem::path& root, int64_t keep);

}  // namespace dtrain::train
