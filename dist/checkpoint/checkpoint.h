#pragma once
// Sharded checkpoints: each rank saves the state it holds, and any number of ranks, at any ZeRO
// stage or none, loads it back — the format ZeRO (dist/zero/) and plain/DDP training share.
//
// Saving (every rank of the group calls it; rank 0 writes the index last):
//   dist::save_sharded_checkpoint(dir, fragments, state, &group);   // what this rank holds (ZeRO)
//   dist::save_whole_state(dir, *model, optimizer, state, &group);  // DDP / one process
// Loading, at any world size (every rank calls open; each reads only the files it needs):
//   auto checkpoint = dist::ShardedCheckpoint::open(dir, &group);   // a FragmentSource
//   Tensor run = checkpoint.read("model.fc.weight", begin, end);    // any element range
//   dist::load_whole_state(checkpoint, *model, optimizer, &group);  // plain model + optimizer
//   train::TrainingState state = checkpoint.training_state();
// One file for a single process (as DeepSpeed's zero_to_fp32), or `dtrain-consolidate`:
//   dist::consolidate_checkpoint(dir, "model.safetensors");
//
// The directory:
//   rank-00000-of-00004.<save id>.safetensors ... rank-00003-of-00004.<save id>.safetensors
//       One per saving rank, named after the save (so a save never overwrites the files of the
//       checkpoint it replaces; checkpoints of format v1 named them "rank-00000-of-00004.safetensors"
//       and still load). Each fragment a rank held is a 1-D tensor under the whole tensor's
//       name ("model.fc.weight", "optimizer.state.fc.weight.exp_avg"; the scheme is in
//       train/checkpoint_names.h, which single-file checkpoints share, and
//       dist/tensor_fragment.h). __metadata__: format, save_id, step, rank, world_size,
//       training_state (that rank's generators, loaders and user metadata as JSON) and
//       fragments (JSON: name -> {shape, begin}), so a shard describes itself.
//   index.json
//       Written by rank 0 after every shard is on disk (atomically: a temporary file, fsync,
//       rename, fsync of the directory), so the index always names a complete save: before its
//       rename the previous checkpoint's, after it the new one's. Then the files of the scheme
//       that it does not name are removed (dist/checkpoint/sharded_save.h says what a crash at
//       any instant leaves). Fields:
//         format          "dtrain.sharded_checkpoint.v2" (v1: shard names without the save id)
//         save_id         16 hex digits, random per save; every shard's metadata and name repeat it
//         step            the training step (every rank's TrainingState::step)
//         world_size      how many ranks saved
//         checksum        {"algorithm": "crc32", "block_bytes": B}
//         files           [{"name", "rank", "bytes"}] — one per rank, its size as written
//         tensors         {"<name>": {"dtype": "F32", "shape": [..], "fragments": [{"rank",
//                         "begin", "end", "crc32": [..]}]}}: the runs [begin, end) of the
//                         row-major elements, by begin, covering the tensor once; crc32 holds
//                         one CRC-32 per B bytes of the run
//         training_state  rank 0's generators, loaders and user metadata
// A shard is checked when first read: its header, its save_id and step against the index's (a
// shard of another save or step is refused), its size, the fragments the index places in it;
// and every block read against its CRC-32. Errors name the shard file and the tensor.
#include "dist/checkpoint/block_checksum.h"
#include "dist/checkpoint/checkpoint_index.h"
#include "dist/checkpoint/consolidate.h"
#include "dist/checkpoint/rank_agreement.h"
#include "dist/checkpoint/sharded_checkpoint.h"
#include "dist/checkpoint/sharded_save.h"
#include "dist/checkpoint/stale_files.h"
#include "dist/checkpoint/whole_state.h"
