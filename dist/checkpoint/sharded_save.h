#pragma once
// Saving a sharded checkpoint: every rank writes the fragments it holds to its own shard file,
// and rank 0 writes the index last (format: dist/checkpoint/checkpoint.h).
#include <cstdint>
#include <filesystem>
#include <vector>

#include "dist/checkpoint/block_checksum.h"
#include "dist/process_group.h"
#include "dist/tensor_fragment.h"
#include "train/training_state.h"

namespace dtrain::dist {

struct ShardedSaveOptions {
  // Each fragment's bytes are checksummed in blocks of this size (a reader checks the blocks it
  // reads); the index holds one CRC-32 per block.
  uint64_t checksum_block_bytes = kDefaultChecksumBlockBytes;
};

// Every rank of group calls it (group null: this process alone, no dist::init needed) with the
// fragments it holds — a tensor that every rank holds whole is passed by one rank only, or split
// among them: the fragments of one tensor from all ranks must cover its elements exactly once —
// and its own TrainingState (the step must be the same on every rank; generators and loaders may
// differ). Returns on every rank once the new checkpoint is on disk.
//
// Crash safety: a crash (of any rank, at any instant) leaves dir loadable as either the checkpoint
// it held before the save or the new one, never a mix and never neither (once one save finished).
//   1. Each rank writes dir/rank-<r>-of-<n>.<save id>.safetensors: a name of this save's own, so
//      no file of the previous checkpoint is touched (atomically: a temporary, fsync, rename,
//      fsync of the directory).
//   2. Once every shard is on disk, rank 0 writes dir/index.json the same way: its rename is the
//      instant the new checkpoint replaces the old one.
//   3. Then rank 0 removes the files of dtrain's naming scheme that the new index does not name:
//      the previous checkpoint's shards (also v1 ones, "rank-<r>-of-<n>.safetensors") and what
//      crashed saves left (shards without an index, temporaries). Nothing else in dir is touched.
// So one checkpoint is kept per directory, the last complete one.
//
// Errors — a bad fragment, two ranks whose fragments overlap, leave a gap or disagree about a
// tensor's shape or dtype, a write that fails on one rank — raise a dtrain::Error on every rank
// naming the rank, the tensor and the file; the ranks take part in the same collectives either
// way, so none waits forever. A refused save leaves the previous checkpoint as it was.
void save_sharded_checkpoint(const std::filesystem::path& dir, const std::vector<TensorFragment>& fragments,
                             const train::TrainingState& state, ProcessGroup* group = nullptr,
                             const ShardedSaveOptions& options = {});

}  // namespace dtrain::dist
