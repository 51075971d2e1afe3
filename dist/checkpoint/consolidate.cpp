#include "dist/checkpoint/consolidate.h"

#include <map>
#include <string>
#include <utility>

#include "core/safetensors.h"
#include "dist/checkpoint/sharded_checkpoint.h"
#include "dist/checkpoint/whole_state.h"
#include "train/checkpoint.h"

namespace dtrain::dist {

ConsolidateSummary consolidate_checkpoint(const std::filesystem::path& dir, const std::filesystem::path& output_file,
                                          const ConsolidateOptions& options) {
  ShardedCheckpoint checkpoint = ShardedCheckpoint::open(dir);
  if (options.verify) checkpoint.verify();
  const std::string model_prefix = "model.";
  std::map<std::string, Tensor> tensors;
  ConsolidateSummary summary{checkpoint.step(), checkpoint.saved_world_size(), 0, 0};
  for (const std::string& name : checkpoint.names()) {
    const bool is_model = name.rfind(model_prefix, 0) == 0;
    if (!options.all_tensors && !is_model) continue;
    Tensor tensor = checkpoint.read(name);
    summary.tensors += 1;
    summary.bytes += static_cast<int64_t>(tensor.nbytes());
    tensors.emplace(options.all_tensors ? name : name.substr(model_prefix.size()), std::move(tensor));
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
