#pragma once
// What --resume names, before anything is loaded: the checkpoint itself (a single file, a sharded
// directory, or a --keep-checkpoints root standing for its newest complete step directory), and
// the metadata the saving run stored with it — what a program needs to build the model that
// loads it.
#include <map>
#include <string>

namespace dtrain::train {

// path, or for a root of --keep-checkpoints directories (a directory without index.json) its
// newest complete step directory; path itself when there is none.
std::string resolve_checkpoint_path(const std::string& path);

// The run's metadata (TrainingState::metadata) of the checkpoint at a resolved path, read from
// the single file's header or the sharded directory's index, without loading tensors. Raises a
// dtrain::Error naming the path when it cannot be read.
std::map<std::string, std::string> checkpoint_run_metadata(const std::string& path);

}  // namespace dtrain::train
