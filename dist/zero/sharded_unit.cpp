#include "dist/zero/sharded_unit.h"

#include <cstddef>
#include <utility>

#include "core/graph.h"

namespace dtrain::dist {

Tensor ShardedUnit::member_view(const Tensor& flat, size_t member, const Shape& shape) const {
  return flat.narrow(0, layout.offset(member), layout.numel(member)).view(shape);
}

void ShardedUnit::start_gather(ProcessGroup& group) {
  if (gather_work) return;
  full.storage()->materialize();
  gather_work = group.all_gather(compute_shard, full);
}

void ShardedUnit::wait_gather() {
  if (!gather_work) return;
  WorkHandle work = std::move(gather_work);
  gather_work = nullptr;
  work->wait();
}

void ShardedUnit::release() {
  wait_gather();
  full.storage()->release();
}

int64_t ShardedUnit::padding_bytes(MemoryTag tag, const ShardingStrategy& strategy) const {
  const int64_t compute_size = static_cast<int64_t>(dtype_size(compute_dtype));
  const int64_t master_size = static_cast<int64_t>(dtype_size(master_dtype));
  const int64_t own_padding = layout.padding_in_shard(shard);
  switch (tag) {
    case MemoryTag::Parameters: {
      int64_t bytes = 0;
      if (full.storage()->is_resident()) bytes += layout.padding() * compute_size;
      if (strategy.shards_parameters()) bytes += own_padding * compute_size;
      return bytes;
    }
    case MemoryTag::Gradients:
      return (strategy.shards_gradients() ? own_padding : layout.padding()) * compute_size;
    case MemoryTag::OptimizerState:
      return mixed_precision() && !offloaded ? own_padding * master_size : 0;  // offloaded: host memory
    case MemoryTag::Communication:
      return bucket.defined() ? layout.padding() * compute_size : 0;
    default:
      return 0;
  }
}

void point_parameter_at(const Tensor& parameter, const Tensor& view) {
  TensorImpl& impl = *parameter.unsafe_impl();
  if (AutogradMeta* meta = parameter.autograd_meta_if_exists()) meta->grad = Tensor();
  impl.storage = view.storage();
  impl.offset = view.storage_offset();
  impl.strides = view.strides();
  impl.dtype = view.dtype();
}

}  // namespace dtrain::dist
