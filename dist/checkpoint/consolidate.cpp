#include "dist/checkpoint/consolidate.h"

#include <map>
#include <string>
#include <utility>

#include "core/safetensors.h"
#include "dist/checkpoint/sharded_checkpoint.h"
#include "dist/checkpoint/whole_state.h"
#include "train/checkpoint.h"
#include "train/checkpoint_names.h"

namespace dtrain::dist {

ConsolidateSummary consolidate_checkpoint(const std::filesystem::path& dir, const std::filesystem::path& output_file,
                                          const ConsolidateOptions& options) {
  ShardedCheckpoint checkpoint = ShardedCheckpoint::open(dir);
  if (options.verify) checkpoint.verify();
  std::map<std::string, Tensor> tensors;
  ConsolidateSummary summary{checkpoint.step(), checkpoint.saved_world_size(), 0, 0};
  for (const std::string& name : checkpoint.names()) {
    if (!options.all_tensors && !train::has_prefix(name, train::kModelPrefix)) continue;
    Tensor tensor = checkpoint.read(name);
    summary.tensors += 1;
    summary.bytes += static_cast<int64_t>(tensor.nbytes());
    tensors.emplace(name, std::move(tensor));  // the one naming (train/checkpoint_names.h), as saved
  }
  save_safetensors(output_file, tensors,
                   {{"consolidated_from", std::filesystem::absolute(dir).string()},
                    {"step", std::to_string(checkpoint.step())},
                    {"saved_world_size", std::to_string(checkpoint.saved_world_size())}});
  return summary;
}

train::TrainingState consolidate_training_checkpoint(const std::filesystem::path& dir,
                                                     const std::filesystem::path& output_file, Module& model,
                                                     optim::Optimizer& optimizer) {
  ShardedCheckpoint checkpoint = ShardedCheckpoint::open(dir);
  load_whole_state(checkpoint, model, optimizer);
  train::TrainingState state = checkpoint.training_state();
  train::save_checkpoint(output_file, model, optimizer, state);
  return state;
}

}  // namespace dtrain::dist
