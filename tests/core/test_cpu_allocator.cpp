// The CPU allocator's cache of freed large blocks: reuse by exact size, small blocks left to the
// C library, the byte accounting of tensors unaffected, and release.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/core.h"

using namespace dtrain;

TEST_CASE("freed large CPU blocks are reused for the same size and do not count as held") {
  release_cpu_cache();
  const int64_t before = memory_stats().total.current;
  const int64_t elements = 300000;  // 1.2 MB, well above the caching threshold
  void* first_block = nullptr;
  {
    Tensor a = full({elements}, 2.5);
    first_block = a.data();
    REQUIRE(memory_stats().total.current == before + elements * 4);
  }
  REQUIRE(memory_stats().total.current == before);  // cached is free, as far as tensors go
  REQUIRE(cpu_cached_bytes() >= static_cast<size_t>(elements * 4));

  // The same size gets the same block back, and it holds what the new tensor writes.
  Tensor b = full({elements}, -1.0);
  REQUIRE(b.data() == first_block);
  std::vector<float> values = b.to_vector<float>();
  for (float value : values) REQUIRE(value == -1.0f);
  REQUIRE(cpu_cached_bytes() == 0);

  // Another size does not take it.
  Tensor c = zeros({elements + 1000});
  REQUIRE(c.data() != first_block);
  for (float value : c.to_vector<float>()) REQUIRE(value == 0.0f);
}

TEST_CASE("small CPU blocks are not cached, and release_cpu_cache empties the cache") {
  release_cpu_cache();
  { Tensor small = zeros({100}); }
  REQUIRE(cpu_cached_bytes() == 0);
  { Tensor large = zeros({static_cast<int64_t>(kMinCachedCpuBlock / 4)}); }
  REQUIRE(cpu_cached_bytes() == kMinCachedCpuBlock);
  release_cpu_cache();
  REQUIRE(cpu_cached_bytes() == 0);
}
