// CUDA devices, the loader seam, the caching allocator on a real device (reuse, splitting, the
// tagged byte counters, empty_cache, the out-of-memory message), streams and events (the one test
// that includes the backend's own header, cuda/stream.h).
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "core/backend.h"
#include "cuda/stream.h"
#include "tests/cuda/cuda_test_support.h"

using namespace dtrain;
using namespace dtrain::cuda_test;
using Catch::Contains;

TEST_CASE("cuda device: the backend is loaded and reports its devices") {
  REQUIRE(cuda::is_available());
  CHECK(cuda::unavailable_reason().empty());
  CHECK(cuda::device_count() >= 1);
  CHECK(cuda::device_for_local_rank(0) == Device::cuda(0));
  CHECK(cuda::device_for_local_rank(cuda::device_count()) == Device::cuda(0));  // wraps around
  CHECK_THROWS_WITH(cuda::device_for_local_rank(-1), Contains("expected a local rank >= 0"));
  cuda::set_device(0);
  CHECK(cuda::current_device() == 0);
  CHECK_THROWS_WITH(cuda::set_device(cuda::device_count()), Contains("out of range"));
  CHECK(cuda::current_stream(gpu()) == nullptr);  // the default stream unless a guard picks another
}

TEST_CASE("cuda device: a tensor on a device that does not exist raises") {
  const int missing = cuda::device_count();
  if (missing >= 16) return;  // every ledger slot is a real device: nothing to test
  CHECK_THROWS_WITH(zeros({4}, {.device = Device::cuda(missing)}), Contains("does not exist"));
}

TEST_CASE("cuda allocator: a freed block is reused without asking the driver") {
  cuda::empty_cache();
  const cuda::CacheStats before = cuda::cache_stats(gpu());
  { Tensor first = empty({1000}, {.device = gpu()}); }  // 4000 bytes, rounded to 4096
  const cuda::CacheStats after_first = cuda::cache_stats(gpu());
  CHECK(after_first.allocated_bytes == before.allocated_bytes);
  CHECK(after_first.reserved_bytes >= before.reserved_bytes + 2 * 1024 * 1024);  // a new small segment stays cached
  Tensor second = empty({900}, {.device = gpu()});
  const cuda::CacheStats after_second = cuda::cache_stats(gpu());
  CHECK(after_second.driver_allocations == after_first.driver_allocations);
  CHECK(after_second.cache_hits == after_first.cache_hits + 1);
  CHECK(after_second.allocated_bytes == before.allocated_bytes + 4096);  // 3600 bytes, rounded up to 512s
}

TEST_CASE("cuda allocator: small tensors split one segment") {
  cuda::empty_cache();
  const cuda::CacheStats before = cuda::cache_stats(gpu());
  std::vector<Tensor> tensors;
  for (int i = 0; i < 16; ++i) tensors.push_back(empty({256}, {.device = gpu()}));  // 1 KiB each
  const cuda::CacheStats after = cuda::cache_stats(gpu());
  CHECK(after.driver_allocations - before.driver_allocations <= 1);
  CHECK(after.splits - before.splits >= 15);
  // Consecutive blocks of one segment sit 1 KiB apart.
  const auto first = reinterpret_cast<uintptr_t>(tensors[0].data());
  const auto second = reinterpret_cast<uintptr_t>(tensors[1].data());
  CHECK(second - first == 1024);
}

TEST_CASE("cuda allocator: storages feed the tagged byte counters of their device") {
  const MemoryStats before = memory_stats(gpu());
  {
    MemoryTagScope scope(MemoryTag::Parameters);
    Tensor weights = empty({1024, 256}, {.device = gpu()});
    const MemoryStats during = memory_stats(gpu());
    CHECK(during[MemoryTag::Parameters].current == before[MemoryTag::Parameters].current + 1024 * 256 * 4);
    CHECK(during.total.current == before.total.current + 1024 * 256 * 4);
    CHECK(memory_stats(Device::cpu()).total.current >= 0);  // the CPU ledger is separate
  }
  CHECK(memory_stats(gpu())[MemoryTag::Parameters].current == before[MemoryTag::Parameters].current);
  CHECK(memory_stats(gpu())[MemoryTag::Parameters].peak >= before[MemoryTag::Parameters].current + 1024 * 256 * 4);
}

TEST_CASE("cuda allocator: empty_cache returns wholly free segments to the driver") {
  { Tensor big = empty({64, 1024, 1024}, {.device = gpu()}); }  // 256 MiB, then cached
  const cuda::CacheStats cached = cuda::cache_stats(gpu());
  CHECK(cached.reserved_bytes - cached.allocated_bytes >= int64_t{256} << 20);
  cuda::empty_cache();
  const cuda::CacheStats emptied = cuda::cache_stats(gpu());
  CHECK(emptied.reserved_bytes <= cached.reserved_bytes - (int64_t{256} << 20));
}

TEST_CASE("cuda allocator: out of memory raises with the size asked for and the allocator's state") {
  const int64_t too_many = int64_t{1} << 50;  // 4 PiB of float32
  try {
    Tensor huge = empty({too_many}, {.device = gpu()});
    FAIL("expected an out-of-memory error");
  } catch (const Error& error) {
    const std::string text = error.what();
    CHECK_THAT(text, Contains("CUDA out of memory on cuda:0: tried to allocate 4503599627370496 bytes"));
    CHECK_THAT(text, Contains("the caching allocator holds"));
    CHECK_THAT(text, Contains("the device has"));
  }
  // The device is still usable afterwards.
  Tensor fine = ones({10}, {.device = gpu()});
  CHECK(sum(fine).item() == 10.0);
}

TEST_CASE("cuda device: released storage raises instead of reading freed memory") {
  Tensor x = ones({8}, {.device = gpu()});
  x.storage()->release();
  CHECK_THROWS_WITH(x.to(Device::cpu()), Contains("was released"));
  x.storage()->materialize();
  x.fill_(3.0);
  CHECK(x.to_vector<float>() == std::vector<float>(8, 3.0f));
}

TEST_CASE("cuda streams: work on a side stream is ordered by events") {
  cuda::Stream side(0);
  Tensor x = full({1 << 20}, 1.0, {.device = gpu()});
  Tensor y;
  {
    cuda::StreamGuard on_side(side);
    CHECK(cuda::current_stream(gpu()) == side.handle());
    cuda::Event ready;
    ready.record(nullptr);  // x was filled on the default stream
    ready.block(side.handle());
    y = mul(x, 3.0);
  }
  cuda::Event done;
  done.record(side.handle());
  done.synchronize();
  CHECK(done.query());
  CHECK(cuda::current_stream(gpu()) == nullptr);
  CHECK(sum(y).item() == 3.0 * (1 << 20));
}
