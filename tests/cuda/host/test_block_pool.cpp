// The CUDA caching allocator's bookkeeping (cuda/block_pool.h) on a fake segment source: runs on
// any machine. Fake segments are address ranges that are never touched.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "core/error.h"
#include "cuda/block_pool.h"

using namespace dtrain;
using namespace dtrain::cuda;
using Catch::Contains;

namespace {

// Hands out disjoint address ranges up to a byte budget, and records what is live.
class FakeSource final : public SegmentSource {
 public:
  explicit FakeSource(size_t budget = size_t{1} << 40) : budget_(budget) {}
  void* allocate_segment(size_t nbytes) override {
    ++requests;
    if (held + nbytes > budget_) return nullptr;
    uintptr_t base = next_;
    next_ += nbytes + 4096;  // a gap, so neighbouring segments never look contiguous
    held += nbytes;
    live[base] = nbytes;
    return reinterpret_cast<void*>(base);
  }
  void free_segment(void* base, size_t nbytes) override {
    auto found = live.find(reinterpret_cast<uintptr_t>(base));
    REQUIRE(found != live.end());
    REQUIRE(found->second == nbytes);
    live.erase(found);
    held -= nbytes;
  }
  std::string describe_memory() override { return "fake device: " + std::to_string(budget_ - held) + " bytes free"; }

  size_t held = 0;
  int requests = 0;
  std::map<uintptr_t, size_t> live;

 private:
  size_t budget_;
  uintptr_t next_ = 0x10000000;
};

uintptr_t address(void* pointer) { return reinterpret_cast<uintptr_t>(pointer); }
constexpr uintptr_t kStream = 0;
constexpr uintptr_t kOtherStream = 7;

}  // namespace

TEST_CASE("block pool: sizes round to 512 bytes and pick the segment size by pool") {
  CHECK(BlockPool::rounded_size(1) == 512);
  CHECK(BlockPool::rounded_size(512) == 512);
  CHECK(BlockPool::rounded_size(513) == 1024);
  CHECK(BlockPool::segment_size_for(512) == kSmallSegment);
  CHECK(BlockPool::segment_size_for(kSmallRequest) == kSmallSegment);
  CHECK(BlockPool::segment_size_for(kSmallRequest + 512) == kMediumSegment);
  CHECK(BlockPool::segment_size_for(kMediumRequest) == kMediumSegment);
  CHECK(BlockPool::segment_size_for(kMediumRequest + 512) == 12u << 20);  // rounded up to 2 MiB
}

TEST_CASE("block pool: small requests split one segment and a freed block is reused") {
  FakeSource source;
  BlockPool pool(source, "fake:0");
  void* a = pool.allocate(1000, kStream);
  void* b = pool.allocate(3000, kStream);
  CHECK(source.requests == 1);                  // both from one 2 MiB segment
  CHECK(address(b) == address(a) + 1024);       // b starts where a's rounded block ends
  CHECK(pool.block_size(a) == 1024);
  CHECK(pool.block_size(b) == 3072);
  BlockPoolStats stats = pool.stats();
  CHECK(stats.allocated_bytes == 1024 + 3072);
  CHECK(stats.reserved_bytes == static_cast<int64_t>(kSmallSegment));
  CHECK(stats.splits == 2);

  pool.free(a);
  void* again = pool.allocate(600, kStream);    // rounds to 1024: a's block, best fit
  CHECK(again == a);
  CHECK(pool.stats().cache_hits == 2);          // b came from the remainder, again from a's block
  CHECK(source.requests == 1);
}

TEST_CASE("block pool: freed neighbours merge back into the whole segment") {
  FakeSource source;
  BlockPool pool(source, "fake:0");
  void* a = pool.allocate(4096, kStream);
  void* b = pool.allocate(4096, kStream);
  void* c = pool.allocate(4096, kStream);
  pool.free(a);
  pool.free(c);  // merges with the free remainder after it
  pool.free(b);  // merges with both sides: the segment is one free block again
  void* whole = pool.allocate(kSmallRequest, kStream);
  CHECK(whole == a);
  CHECK(source.requests == 1);
  pool.free(whole);
  pool.release_cached();
  CHECK(source.live.empty());
  CHECK(pool.stats().reserved_bytes == 0);
  CHECK(pool.stats().segments == 0);
}

TEST_CASE("block pool: free lists are per stream") {
  FakeSource source;
  BlockPool pool(source, "fake:0");
  void* a = pool.allocate(kSmallRequest * 2, kStream);  // a medium block in a 20 MiB segment
  pool.free(a);
  void* other = pool.allocate(kSmallRequest * 2, kOtherStream);
  CHECK(other != a);
  CHECK(source.requests == 2);
  void* same = pool.allocate(kSmallRequest * 2, kStream);
  CHECK(same == a);
  CHECK(source.requests == 2);
}

TEST_CASE("block pool: large blocks keep remainders over 1 MiB only") {
  FakeSource source;
  BlockPool pool(source, "fake:0");
  // 19.5 MiB of a 20 MiB segment: the 0.5 MiB rest stays with the block.
  void* a = pool.allocate((size_t{39} << 20) / 2, kStream);
  CHECK(pool.block_size(a) == kMediumSegment);
  CHECK(pool.stats().splits == 0);
  // 4 MiB of another 20 MiB segment: the 16 MiB rest is split off and serves the next request.
  void* b = pool.allocate(size_t{4} << 20, kStream);
  void* c = pool.allocate(size_t{8} << 20, kStream);
  CHECK(pool.block_size(b) == size_t{4} << 20);
  CHECK(address(c) == address(b) + (size_t{4} << 20));
  CHECK(source.requests == 2);
}

TEST_CASE("block pool: empty cache releases only wholly free segments") {
  FakeSource source;
  BlockPool pool(source, "fake:0");
  void* kept = pool.allocate(1000, kStream);
  void* dropped = pool.allocate(kSmallRequest * 3, kStream);  // its own 20 MiB segment
  pool.free(dropped);
  CHECK(pool.stats().segments == 2);
  pool.release_cached();
  CHECK(pool.stats().segments == 1);
  CHECK(pool.stats().reserved_bytes == static_cast<int64_t>(kSmallSegment));
  CHECK(source.live.size() == 1);
  CHECK(pool.block_size(kept) == 1024);
}

TEST_CASE("block pool: out of memory releases cached segments and retries") {
  FakeSource source(kMediumSegment + kSmallSegment);  // room for one 20 MiB and one 2 MiB segment
  BlockPool pool(source, "fake:0");
  void* medium = pool.allocate(kSmallRequest * 2, kStream);
  pool.free(medium);  // cached, but on its stream only
  void* small = pool.allocate(1000, kStream);
  // Another stream's medium request cannot reuse the cached block; the retry after releasing it fits.
  void* other = pool.allocate(kSmallRequest * 2, kOtherStream);
  CHECK(other != nullptr);
  CHECK(pool.stats().segments == 2);
  pool.free(small);
  pool.free(other);
}

TEST_CASE("block pool: out of memory raises with the size asked for and the pool's state") {
  FakeSource source(kSmallSegment);
  BlockPool pool(source, "fake:0");
  void* held = pool.allocate(1000, kStream);
  try {
    pool.allocate(size_t{3} << 20, kStream);
    FAIL("expected an out-of-memory error");
  } catch (const Error& error) {
    std::string text = error.what();
    CHECK_THAT(text, Contains("CUDA out of memory on fake:0"));
    CHECK_THAT(text, Contains("tried to allocate 3145728 bytes (3.00 MiB)"));
    CHECK_THAT(text, Contains("holds 2097152 bytes (2.00 MiB) in 1 segments"));
    CHECK_THAT(text, Contains("1024 bytes (0.00 MiB) allocated to tensors"));
    CHECK_THAT(text, Contains("fake device: 0 bytes free"));
  }
  pool.free(held);
}

TEST_CASE("block pool: freeing a pointer it did not hand out raises") {
  FakeSource source;
  BlockPool pool(source, "fake:0");
  void* block = pool.allocate(100, kStream);
  pool.free(block);
  CHECK_THROWS_WITH(pool.free(block), Contains("did not hand out (or freed twice)"));
  int local = 0;
  CHECK_THROWS_WITH(pool.free(&local), Contains("did not hand out"));
}
