// The per-device memory limit (core/allocator.h): a storage that would take the counted total past
// it raises, naming the request and the cap, and counts nothing.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

#include "core/allocator.h"
#include "core/error.h"
#include "core/ops/factory.h"
#include "core/storage.h"
#include "core/tensor.h"

using namespace dtrain;
using Catch::Matchers::Contains;

namespace {

// Removes the limit however the test case ends, so the other tests of this process run without it.
struct LimitGuard {
  ~LimitGuard() { set_memory_limit(Device::cpu(), kNoMemoryLimit); }
};

}  // namespace

TEST_CASE("no memory limit is set by default") {
  REQUIRE(memory_limit(Device::cpu()) == kNoMemoryLimit);
}

TEST_CASE("a tensor that fits under the memory limit is allocated, one past it raises and counts nothing") {
  LimitGuard guard;
  const int64_t held = memory_stats().total.current;
  set_memory_limit(Device::cpu(), held + 4096);
  REQUIRE(memory_limit(Device::cpu()) == held + 4096);

  Tensor first = zeros({768});  // 3072 bytes: 1024 left
  REQUIRE(memory_stats().total.current == held + 3072);
  Tensor exactly = zeros({256});  // 1024 bytes: exactly at the limit is allowed
  REQUIRE(memory_stats().total.current == held + 4096);

  const MemoryStats before = memory_stats();
  {
    MemoryTagScope tag(MemoryTag::Activations);
    try {
      zeros({1});
      FAIL("expected the allocation past the limit to raise");
    } catch (const Error& error) {
      const std::string message = error.what();
      CHECK_THAT(message, Contains("4 bytes (activations)"));                       // the request
      CHECK_THAT(message, Contains("limit set by set_memory_limit is " + std::to_string(held + 4096)));  // the cap
      CHECK_THAT(message, Contains("tensors hold " + std::to_string(held + 4096)));
      CHECK_THAT(message, Contains("(0 free)"));
    }
  }
  const MemoryStats after = memory_stats();
  REQUIRE(after.total.current == before.total.current);
  REQUIRE(after.total.peak == before.total.peak);
  REQUIRE(after[MemoryTag::Activations].current == before[MemoryTag::Activations].current);

  // Freed bytes can be taken again.
  first = Tensor();
  Tensor again = zeros({768});
  REQUIRE(memory_stats().total.current == held + 4096);
}

TEST_CASE("the memory limit applies when a released storage is materialised again") {
  LimitGuard guard;
  Tensor parameter = zeros({256});  // 1 KiB
  parameter.storage()->release();
  const int64_t held = memory_stats().total.current;
  set_memory_limit(Device::cpu(), held + 512);
  REQUIRE_THROWS_WITH(parameter.storage()->materialize(), Contains("1024 bytes"));
  REQUIRE_FALSE(parameter.storage()->is_resident());
  REQUIRE(memory_stats().total.current == held);
  set_memory_limit(Device::cpu(), held + 1024);
  parameter.storage()->materialize();
  REQUIRE(parameter.storage()->is_resident());
  REQUIRE(memory_stats().total.current == held + 1024);
}

TEST_CASE("bytes held before a lower memory limit stay, and retagging them is not an allocation") {
  LimitGuard guard;
  Tensor state = zeros({1024});  // 4 KiB
  const int64_t held = memory_stats().total.current;
  set_memory_limit(Device::cpu(), held - 2048);  // already past it
  state.storage()->set_tag(MemoryTag::OptimizerState);
  REQUIRE(memory_stats()[MemoryTag::OptimizerState].current >= 4096);
  REQUIRE(memory_stats().total.current == held);
  REQUIRE_THROWS_AS(zeros({1}), Error);
  state = Tensor();  // 2048 bytes under the limit now: one more KiB fits
  Tensor small = zeros({256});
  REQUIRE(memory_stats().total.current == held - 4096 + 1024);
}

TEST_CASE("kNoMemoryLimit removes the limit and a negative limit is refused") {
  LimitGuard guard;
  set_memory_limit(Device::cpu(), memory_stats().total.current);
  REQUIRE_THROWS_AS(zeros({1}), Error);
  set_memory_limit(Device::cpu(), kNoMemoryLimit);
  REQUIRE_NOTHROW(zeros({1 << 20}));
  REQUIRE_THROWS_WITH(set_memory_limit(Device::cpu(), -1), Contains("expected a limit >= 0 bytes"));
  REQUIRE(memory_limit(Device::cpu()) == kNoMemoryLimit);
}
