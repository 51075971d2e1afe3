#pragma once
// ShardedCheckpoint: a sharded checkpoint on disk as a FragmentSource — any element range of any
// saved tensor, assembled from whichever shard files hold it, whatever the world size and the
// ZeRO stage were when it was saved and are now.
//
//   auto checkpoint = dist::ShardedCheckpoint::open("ckpt/step-1000", &dist::world());
//   Tensor mine = checkpoint.read("optimizer.state.fc.weight.exp_avg", begin, end);  // 1-D
//   train::TrainingState state = checkpoint.training_state();
//
// open() reads only the index. A shard file is opened and checked (its header, the save and step
// it belongs to, its size, the fragments the index places in it) the first time a read needs it,
// and every block of bytes a read takes from it is checked against its CRC-32 — so a rank reads
// and checks only the files that hold what it asks for. Those checks raise on the rank that reads;
// where ranks read different files, wrap the reads in agree_on_errors (dist/checkpoint/
// rank_agreement.h) so every rank raises together.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "dist/checkpoint/checkpoint_index.h"
#include "dist/process_group.h"
#include "dist/tensor_fragment.h"
#include "train/training_state.h"

namespace dtrain::dist {

class ShardedCheckpoint : public FragmentSource {
 public:
  // Reads and checks dir/index.json; a directory without it (an unfinished save) is refused.
  // With group, every rank of group calls it and either all return or all raise the same error;
  // when group has as many ranks as saved the checkpoint, each rank also opens its own shard,
  // for its training state.
  static ShardedCheckpoint open(const std::filesystem::path& dir, ProcessGroup* group = nullptr);

  const std::filesystem::path& directory() const { return dir_; }
  int saved_world_size() const { return index_.world_size; }
  int64_t step() const { return index_.step; }
  const std::string& save_id() const { return index_.save_id; }
  const CheckpointIndex& index() const { return index_; }
  // Every saved tensor's name, sorted.
  std::vector<std::string> names() const override;

  // What a run resumes from. Opened with a group of the saved world size, rank r gets the state
  // rank r saved (its own generators and loader positions: an exact resume). Otherwise — another
  // world size, or no group — rank 0's: the step, the user metadata, and rank 0's generators and
  // loaders. A DataLoaderState counts per-rank batches, so after a change of world size the
  // caller decides how to map it (see "Sharded checkpoints" in README.md).
  const train::TrainingState& training_state() const { return training_state_; }

  bool contains(const std::string& name) const override;
  Shape shape(const std::string& name) const override;
  DType dtype(const std::string& name) const override;
  Tensor read(const std::string& name, int64_t begin, int64_t end) const override;
  // The whole tensor, in its shape.
  Tensor read(const std::string& name) const;

  // The shard files a read of elements [begin, end) of name opens.
  std::vector<std::filesystem::path> files_for(const std::string& name, int64_t begin, int64_t end) const;
  // Reads every fragment of every tensor and checks every checksum; raises on the first problem.
  void verify() const;

 private:
  struct CheckedShard;
  struct ShardCache;

  ShardedCheckpoint() = default;
  const IndexedTensor& tensor(const std::string& name) const;
  static CheckedShard check_shard(const CheckpointIndex& index, const std::filesystem::path& dir, int rank);
  // The shard file of rank, checked on first use; raises naming it, with context in front.
  const CheckedShard& shard(int rank, const std::string& context) const;
  void read_fragment(const std::string& name, const IndexedFragment& fragment, DType dtype, int64_t begin, int64_t end,
                     char* destination) const;

  std::filesystem::path dir_;
  CheckpointIndex index_;
  train::TrainingState training_state_;
  std::shared_ptr<ShardCache> cache_;
};

}  // namespace dtrain::dist
