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
// differ). Writes dir/rank-<r>-of-<n>.safetensors on each rank, then, after every rank has
// written, dir/index.json from rank 0; returns on every rank once the index is on disk.
//
// Once every rank's fragments are found valid, rank 0 removes any earlier index in dir before a
// shard is written, so an interrupted save leaves a directory that loading refuses, never a mix
// of two saves (and a refused save leaves an earlier checkpoint intact). Shard files of an
// earlier save by another number of ranks stay; the index names its own.
//
// Errors — a bad fragment, two ranks whose fragments overlap, leave a gap or disagree about a
// tensor's shape or dtype, a write that fails on one rank — raise a dtrain::Error on every rank
// naming the rank, the tensor and the file; the ranks take part in the same collectives either
// way, so none waits forever.
void save_sharded_checkpoint(const std::filesystem::path& dir, const std::vector<TensorFragment>& fragments,
                             const train::TrainingState& state, ProcessGroup* group = nullptr,
                             const ShardedSaveOptions& options = {});

}  // namespace dtrain::dist
