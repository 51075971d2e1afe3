#pragma once
// The DistributedSampler (data/sampler.h) of this process: rank and world size come from the
// process group, so every rank of a DDP run reads its own disjoint, equal-size share of each
// epoch's seeded shuffle.
//
//   DataLoader loader(dataset, {.batch_size = 32,
//                               .sampler = dist::distributed_sampler(dataset->size(), {.seed = 1})});
//   loader.set_epoch(epoch);  // a new shuffle each epoch, the same on every rank
#include <cstdint>
#include <memory>

#include "data/sampler.h"
#include "dist/process_group.h"

namespace dtrain::dist {

// options.rank and options.world_size are replaced by group's (the world's when null).
std::shared_ptr<DistributedSampler> distributed_sampler(int64_t dataset_size, DistributedSamplerOptions options = {},
                                                        const ProcessGroup* group = nullptr);

}  // namespace dtrain::dist
