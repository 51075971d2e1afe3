#include "dist/distributed_sampler.h"

#include "dist/init.h"

namespace dtrain::dist {

std::shared_ptr<DistributedSampler> distributed_sampler(int64_t dataset_size, DistributedSamplerOptions options,
                                                        const ProcessGroup* group) {
  if (group == nullptr) {
    if (!is_initialized()) fail("distributed_sampler: dist::init() has not run (call it first)");
    group = &world();
  }
  options.rank = group->rank();
  options.world_size = group->size();
  return std::make_shared<DistributedSampler>(dataset_size, options);
}

}  // namespace dtrain::dist
