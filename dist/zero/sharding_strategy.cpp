#include "dist/zero/sharding_strategy.h"

#include "core/error.h"

namespace dtrain::dist {

ShardingStrategy ShardingStrategy::for_stage(int stage) {
  switch (stage) {
    case 0:
      return ShardingStrategy(0, false, false, false);
    case 1:
      return ShardingStrategy(1, true, false, false);
    case 2:
      return ShardingStrategy(2, true, true, false);
    case 3:
      return ShardingStrategy(3, true, true, true);
    default:
      fail("ZeroOptimizer: expected stage 0, 1, 2 or 3, got ", stage);
  }
}

}  // namespace dtrain::dist
