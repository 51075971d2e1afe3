// How ZeroOptimizer cuts the model into units and builds their buffers and the shard's optimizer
// (dist/zero/sharded_unit.h describes the buffers of each stage).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/grad_mode.h"
#include "core/ops/factory.h"
#include "dist/bucket_assignment.h"
#include "dist/zero/zero_optimizer.h"

namespace dtrain::dist {

void ZeroOptimizer::build_units(const std::vector<NamedTensor>& trainable) {
  const int shard_count = strategy_.shard_count(group_->size());
  const int shard = strategy_.shards_optimizer_state() ? group_->rank() : 0;
  auto add_unit = [&](std::string name, std::vector<size_t> members, bool persistent) {
    ShardedUnit unit;
    unit.name = std::move(name);
    std::vector<int64_t> numels;
    for (size_t p : members) numels.push_back(parameters_[p].numel());
    unit.parameters = std::move(members);
    unit.layout = ShardLayout(std::move(numels), shard_count);
    unit.shard = shard;
    unit.compute_dtype = compute_dtype_;
    unit.master_dtype = master_dtype_;
    unit.persistent = persistent;
    units_.push_back(std::move(unit));
  };

  if (!strategy_.shards_parameters()) {
    std::vector<BucketableTensor> sizes;
    for (const Tensor& parameter : parameters_) {
      sizes.push_back({static_cast<size_t>(parameter.numel()) * dtype_size(compute_dtype_), compute_dtype_,
                       parameter.device()});
    }
    const size_t cap = megabytes_to_bytes(options_.bucket_cap_mb, "ZeroOptimizer", "bucket_cap_mb");
    for (std::vector<size_t>& members : assign_gradient_buckets(sizes, cap, cap)) {
      launch_order_.push_back(units_.size());
      add_unit("bucket " + std::to_string(units_.size()), std::move(members), false);
    }
    return;
  }

  // Stage 3: a unit per module with parameters of its own (those below the persistence
  // threshold go to one persistent unit), in module registration order.
  std::unordered_map<const TensorImpl*, size_t> index_of;
  for (size_t p = 0; p < parameters_.size(); ++p) index_of[parameters_[p].unsafe_impl()] = p;
  std::vector<size_t> unit_of(parameters_.size(), SIZE_MAX);
  std::vector<size_t> persistent_members;
  constexpr size_t kPersistent = SIZE_MAX - 1;
  for (auto& [module_name, module] : model_->named_modules()) {
    std::vector<size_t> owned;
    std::vector<size_t> used;  // every parameter of its own, tied ones included
    for (const auto& [name, parameter] : module->named_parameters()) {
      if (name.find('.') != std::string::npos) continue;  // a child's
      auto found = index_of.find(parameter.unsafe_impl());
      if (found == index_of.end()) continue;  // not trainable
      const size_t p = found->second;
      used.push_back(p);
      if (unit_of[p] != SIZE_MAX) continue;  // tied: owned by the module that listed it first
      if (parameter.numel() < options_.param_persistence_threshold) {
        unit_of[p] = kPersistent;
        persistent_members.push_back(p);
      } else {
        owned.push_back(p);
      }
    }
    if (!owned.empty()) {
      for (size_t p : owned) unit_of[p] = units_.size();
      add_unit("module '" + (module_name.empty() ? std::string("(root)") : module_name) + "'", owned, false);
    }
    if (!used.empty()) module_units_.emplace_back(module, used);  // parameter indices for now
  }
  const size_t module_unit_count = units_.size();
  if (!persistent_members.empty()) {
    std::sort(persistent_members.begin(), persistent_members.end());
    for (size_t p : persistent_members) unit_of[p] = units_.size();
    add_unit("the persistent parameters", persistent_members, true);
  }
  // Parameters to units; a module needs the non-persistent units of its parameters.
  for (auto& [module, needed] : module_units_) {
    std::vector<size_t> unit_list;
    for (size_t p : needed) {
      const size_t unit = unit_of[p];
      if (!units_[unit].persistent && std::find(unit_list.begin(), unit_list.end(), unit) == unit_list.end()) {
        unit_list.push_back(unit);
      }
    }
    needed = std::move(unit_list);
  }
  // Gradients are complete roughly in reverse module order; the persistent unit (small
  // parameters from everywhere) completes last.
  for (size_t u = module_unit_count; u-- > 0;) launch_order_.push_back(u);
  if (units_.size() > module_unit_count) launch_order_.push_back(module_unit_count);
}

void ZeroOptimizer::build_buffers(const std::vector<Tensor>& original_values) {
  NoGradGuard no_grad;
  for (ShardedUnit& unit : units_) {
    const Device device = parameters_[unit.parameters.front()].device();
    const int64_t shard_size = unit.shard_size();
    {
      MemoryTagScope tag(MemoryTag::Parameters);
      unit.full = zeros({unit.padded_total()}, {.dtype = compute_dtype_, .device = device});
    }
    for (size_t member = 0; member < unit.parameters.size(); ++member) {
      const Tensor& value = original_values[unit.parameters[member]];
      Tensor slot = unit.member_view(unit.full, member, value.shape());
      const Tensor& parameter = parameters_[unit.parameters[member]];
      if (deferred_ && deferred_->contains(parameter)) deferred_->write(parameter, 0, slot);  // sharded construction
      else slot.copy_(value);
    }
    Tensor own_slot = unit.full.narrow(0, unit.own_begin(), shard_size);
    if (strategy_.shards_parameters()) {
      MemoryTagScope tag(MemoryTag::Parameters);
      unit.compute_shard = own_slot.clone();
    } else {
      unit.compute_shard = own_slot;
    }
    unit.offloaded = options_.offload_optimizer && device.is_cuda();
    if (unit.has_own_master()) {
      // The masters come from the full-precision values, not from their rounded compute copy.
      MemoryTagScope tag(MemoryTag::OptimizerState);
      const Device master_device = unit.offloaded ? Device::cpu() : device;
      unit.master_shard = zeros({shard_size}, {.dtype = master_dtype_, .device = master_device});
      for (const ShardPiece& piece : unit.layout.pieces(unit.shard)) {
        const Tensor& value = original_values[unit.parameters[piece.tensor]];
        Tensor master = unit.master_shard.narrow(0, piece.flat_begin - unit.own_begin(), piece.length);
        const Tensor& parameter = parameters_[unit.parameters[piece.tensor]];
        if (deferred_ && deferred_->contains(parameter)) deferred_->write(parameter, piece.tensor_begin, master);
        else master.copy_(value.reshape({value.numel()}).narrow(0, piece.tensor_begin, piece.length));
      }
    } else {
      unit.master_shard = unit.compute_shard;
    }
    for (size_t member = 0; member < unit.parameters.size(); ++member) {
      const Tensor& parameter = parameters_[unit.parameters[member]];
      point_parameter_at(parameter, unit.member_view(unit.full, member, parameter.shape()));
    }
    if (!strategy_.shards_gradients()) {
      MemoryTagScope tag(MemoryTag::Gradients);
      unit.full_gradient = zeros({unit.padded_total()}, {.dtype = compute_dtype_, .device = device});
      unit.gradient_shard = unit.full_gradient.narrow(0, unit.own_begin(), shard_size);
      for (size_t member = 0; member < unit.parameters.size(); ++member) {
        Tensor parameter = parameters_[unit.parameters[member]];
        parameter.set_grad(unit.member_view(unit.full_gradient, member, parameter.shape()));
      }
    } else {
      MemoryTagScope tag(MemoryTag::Gradients);
      unit.gradient_shard = zeros({shard_size}, {.dtype = compute_dtype_, .device = device});
    }
    if (strategy_.shards_parameters() && !unit.persistent) unit.full.storage()->release();
  }
}

void ZeroOptimizer::build_pieces_and_optimizer(OptimizerFactory& factory) {
  std::vector<std::vector<Piece>> by_group(group_count_);
  for (size_t u = 0; u < units_.size(); ++u) {
    ShardedUnit& unit = units_[u];
    for (const ShardPiece& piece : unit.layout.pieces(unit.shard)) {
      const size_t parameter = unit.parameters[piece.tensor];
      const int64_t shard_offset = piece.flat_begin - unit.own_begin();
      by_group[group_of_[parameter]].push_back(
          {parameter, u, piece.tensor_begin, piece.length, shard_offset, unit.master_shard.narrow(0, shard_offset, piece.length)});
    }
  }
  std::vector<std::vector<Tensor>> group_tensors(group_count_);
  for (size_t g = 0; g < group_count_; ++g) {
    // Within a group, pieces follow the parameters' registration order.
    std::stable_sort(by_group[g].begin(), by_group[g].end(),
                     [](const Piece& a, const Piece& b) { return a.parameter < b.parameter; });
    for (Piece& piece : by_group[g]) {
      group_tensors[g].push_back(piece.master);
      pieces_.push_back(piece);
    }
  }
  optimizer_ = factory(std::move(group_tensors));
  if (!optimizer_) fail("ZeroOptimizer", ": the optimizer factory returned null");
  std::vector<Tensor> built = optimizer_->parameters();
  bool same = built.size() == pieces_.size();
  for (size_t i = 0; same && i < built.size(); ++i) same = built[i].is_same(pieces_[i].master);
  if (!same) {
    fail("ZeroOptimizer", ": the optimizer factory must build the optimizer over exactly the tensors it is given, group by ",
         "group and in order (got ", built.size(), " parameters for ", pieces_.size(), " shard pieces)");
  }
}

}  // namespace dtrain::dist
