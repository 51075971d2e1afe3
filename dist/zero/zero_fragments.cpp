// ZeroOptimizer's sharded state: what each rank saves, and loading it back at any world size and
// stage (dist/tensor_fragment.h names the tensors).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/grad_mode.h"
#include "core/ops/factory.h"
#include "dist/checkpoint/rank_agreement.h"
#include "dist/zero/zero_optimizer.h"
#include "optim/state_dict.h"

namespace dtrain::dist {
namespace {

constexpr const char* kOptimizerStatePrefix = "optimizer.state.";

// The state tensors the source holds for each parameter, by parameter name: whatever names the
// optimizer that saved them keeps ("exp_avg", "momentum_buffer", or an optimizer's own), taken
// from "optimizer.state.<parameter name>.<state name>" (parameter names have dots, state names
// none). The step count is read separately.
std::map<std::string, std::vector<std::string>> saved_state_names(const FragmentSource& source) {
  std::map<std::string, std::vector<std::string>> names;
  const std::string prefix = kOptimizerStatePrefix;
  for (const std::string& key : source.names()) {
    if (key.compare(0, prefix.size(), prefix) != 0) continue;
    const size_t dot = key.rfind('.');
    if (dot < prefix.size()) continue;
    std::string state_name = key.substr(dot + 1);
    if (state_name == "step") continue;
    names[key.substr(prefix.size(), dot - prefix.size())].push_back(std::move(state_name));
  }
  return names;
}

TensorFragment whole(std::string name, const Tensor& value) {
  return {std::move(name), value.shape(), 0, value.reshape({value.numel()}).contiguous().clone()};
}

double read_number(const FragmentSource& source, const std::string& name) {
  Tensor value = source.read(name, 0, 1);
  if (value.numel() != 1) fail("ZeroOptimizer: expected one value for '", name, "', got ", value.numel());
  return value.item();
}

}  // namespace

std::vector<std::pair<std::string, Tensor>> ZeroOptimizer::untrained_state() const {
  // A trained parameter registered by two modules (a tied weight) is in the state dict under both
  // names; the second shares its storage. It is saved and loaded under its first name only (and
  // at stage 3 its bytes are released between uses).
  std::unordered_set<const Storage*> trained;
  for (const Tensor& parameter : parameters_) trained.insert(parameter.storage().get());
  std::vector<std::pair<std::string, Tensor>> state;
  for (const auto& [name, tensor] : model_->state_dict()) {
    if (std::find(names_.begin(), names_.end(), name) != names_.end()) continue;
    if (trained.count(tensor.storage().get()) != 0) continue;
    state.emplace_back(name, tensor);
  }
  return state;
}

std::vector<TensorFragment> ZeroOptimizer::state_fragments() const {
  wait_for_parameters();  // the masters may be a slot of a buffer an all-gather is still writing
  NoGradGuard no_grad;
  std::vector<TensorFragment> fragments;
  const bool rank0 = group_->rank() == 0;
  if (!strategy_.shards_optimizer_state() && !rank0) return fragments;  // every rank holds everything: rank 0 saves it
  for (size_t i = 0; i < pieces_.size(); ++i) {
    const Piece& piece = pieces_[i];
    const std::string& name = names_[piece.parameter];
    const Shape& shape = parameters_[piece.parameter].shape();
    fragments.push_back({"model." + name, shape, piece.tensor_begin, piece.master.clone()});
    for (const auto& [state_name, tensor] : optimizer_->state(i).tensors) {
      fragments.push_back({kOptimizerStatePrefix + name + "." + state_name, shape, piece.tensor_begin, tensor.clone()});
    }
  }
  if (!rank0) return fragments;
  // Buffers and parameters that are not trained are the same on every rank: rank 0 saves them.
  for (const auto& [name, tensor] : untrained_state()) fragments.push_back(whole("model." + name, tensor));
  for (size_t p = 0; p < parameters_.size(); ++p) {
    if (steps_[p] > 0) fragments.push_back(whole(kOptimizerStatePrefix + names_[p] + ".step", optim::int64_scalar(steps_[p])));
  }
  for (size_t g = 0; g < optimizer_->num_param_groups(); ++g) {
    const std::string prefix = "optimizer.param_groups." + std::to_string(g) + ".";
    for (const auto& [name, value] : optimizer_->param_group(g).hyperparameters) {
      fragments.push_back(whole(prefix + name, optim::float64_scalar(value)));
    }
    std::vector<int64_t> indices;
    for (size_t p = 0; p < parameters_.size(); ++p) {
      if (group_of_[p] == g) indices.push_back(index_in_groups_[p]);
    }
    fragments.push_back(whole(prefix + "params", from_vector(indices)));
  }
  if (scaler_.enabled()) {
    fragments.push_back(whole("loss_scaler.scale", optim::float64_scalar(scaler_.scale())));
    fragments.push_back(whole("loss_scaler.growth_tracker", optim::int64_scalar(scaler_.growth_tracker())));
  }
  return fragments;
}

void ZeroOptimizer::load_state_fragments(const FragmentSource& source) {
  wait_for_parameters();
  NoGradGuard no_grad;
  // Read and check everything this rank needs before changing anything. A problem only this
  // rank can see (its part of a shard file is damaged) must stop every rank: the ranks agree on
  // the outcome of the reads before any of them applies them or enters a collective.
  const bool with_optimizer = source.contains("optimizer.param_groups.0.params");
  optim::StateDict inner;
  std::vector<std::pair<Tensor, Tensor>> buffer_values;  // (model tensor, value to copy in)
  std::vector<Tensor> piece_values;                      // by piece
  std::vector<int64_t> steps(parameters_.size(), 0);
  std::optional<std::pair<double, int64_t>> scaler_state;
  agree_on_errors(group_.get(), "ZeroOptimizer.load_state_fragments", [&] {
  for (size_t p = 0; p < parameters_.size(); ++p) {
    const std::string key = "model." + names_[p];
    if (!source.contains(key)) fail("ZeroOptimizer.load_state_fragments: the source has no '", key, "'");
    if (source.shape(key) != parameters_[p].shape()) {
      fail("ZeroOptimizer.load_state_fragments: '", key, "' has shape ", source.shape(key), " in the source, the model ",
           parameters_[p].shape());
    }
  }
  if (with_optimizer) {
    for (size_t g = 0; g < optimizer_->num_param_groups(); ++g) {
      const std::string prefix = "optimizer.param_groups." + std::to_string(g) + ".";
      if (!source.contains(prefix + "params")) {
        fail("ZeroOptimizer.load_state_fragments: the source has no '", prefix, "params' (the optimizer has ",
             optimizer_->num_param_groups(), " parameter groups)");
      }
      std::vector<int64_t> expected;
      for (size_t p = 0; p < parameters_.size(); ++p) {
        if (group_of_[p] == g) expected.push_back(index_in_groups_[p]);
      }
      const int64_t count = source.shape(prefix + "params").numel();
      std::vector<int64_t> saved = count == 0 ? std::vector<int64_t>() : source.read(prefix + "params", 0, count).to_vector<int64_t>();
      if (saved != expected) {
        fail("ZeroOptimizer.load_state_fragments: parameter group ", g, " holds ", saved.size(),
             " parameters in the source and ", expected.size(), " here (or other ones): the parameter groups differ");
      }
      for (const auto& [name, value] : optimizer_->param_group(g).hyperparameters) {
        const std::string key = prefix + name;
        inner["param_groups." + std::to_string(g) + "." + name] =
            optim::float64_scalar(source.contains(key) ? read_number(source, key) : value);
      }
    }
    // The shard optimizer numbers its pieces group by group, in pieces_ order.
    std::vector<std::vector<int64_t>> piece_indices(optimizer_->num_param_groups());
    for (size_t i = 0; i < pieces_.size(); ++i) piece_indices[group_of_[pieces_[i].parameter]].push_back(static_cast<int64_t>(i));
    for (size_t g = 0; g < piece_indices.size(); ++g) {
      inner["param_groups." + std::to_string(g) + ".params"] =
          from_vector(piece_indices[g], Shape{static_cast<int64_t>(piece_indices[g].size())}, {.dtype = kInt64});
    }
    const std::map<std::string, std::vector<std::string>> state_names = saved_state_names(source);
    for (size_t i = 0; i < pieces_.size(); ++i) {
      const Piece& piece = pieces_[i];
      const std::string prefix = kOptimizerStatePrefix + names_[piece.parameter] + ".";
      if (!source.contains(prefix + "step")) continue;
      const std::string inner_prefix = "state." + std::to_string(i) + ".";
      inner[inner_prefix + "step"] = optim::int64_scalar(static_cast<int64_t>(read_number(source, prefix + "step")));
      auto saved = state_names.find(names_[piece.parameter]);
      if (saved == state_names.end()) continue;
      for (const std::string& state_name : saved->second) {
        inner[inner_prefix + state_name] =
            source.read(prefix + state_name, piece.tensor_begin, piece.tensor_begin + piece.length).to(master_dtype_);
      }
    }
  }

  // Values: this rank's pieces of the trained parameters, and every buffer and untrained
  // parameter whole (a source without them leaves them as they are).
  for (const auto& [name, tensor] : untrained_state()) {
    if (!source.contains("model." + name)) continue;
    if (source.shape("model." + name) != tensor.shape()) {
      fail("ZeroOptimizer.load_state_fragments: 'model.", name, "' has shape ", source.shape("model." + name),
           " in the source, the model ", tensor.shape());
    }
    buffer_values.emplace_back(tensor, source.read("model." + name, 0, tensor.numel()).to(tensor.dtype()).view(tensor.shape()));
  }
  for (Piece& piece : pieces_) {
    Tensor value = source.read("model." + names_[piece.parameter], piece.tensor_begin, piece.tensor_begin + piece.length);
    piece_values.push_back(value.to(master_dtype_));
  }
  if (with_optimizer) {
    for (size_t p = 0; p < parameters_.size(); ++p) {
      const std::string key = kOptimizerStatePrefix + names_[p] + ".step";
      steps[p] = source.contains(key) ? static_cast<int64_t>(read_number(source, key)) : 0;
    }
  }
  if (scaler_.enabled() && source.contains("loss_scaler.scale")) {
    scaler_state = std::make_pair(read_number(source, "loss_scaler.scale"),
                                  static_cast<int64_t>(read_number(source, "loss_scaler.growth_tracker")));
  }
  });  // agree_on_errors

  // Apply: the inner optimizer checks its dict completely before changing anything.
  if (with_optimizer) {
    optimizer_->load_state_dict(inner);
    steps_ = steps;
  }
  for (auto& [target, value] : buffer_values) {
    Tensor destination = target;
    destination.copy_(value);
  }
  for (size_t i = 0; i < pieces_.size(); ++i) pieces_[i].master.copy_(piece_values[i]);
  if (scaler_state) scaler_.load(scaler_state->first, scaler_state->second);
  refresh_compute_parameters();
}

}  // namespace dtrain::dist
