// The process-wide count of collectives and their payload bytes (dist/communication_volume.h):
// moved by exactly the bytes each collective hands over, computed here by hand, and consistent
// when many threads add to it at once.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "core/core.h"
#include "dist/communication_volume.h"
#include "dist/init.h"
#include "dist/process_group.h"

namespace dtrain::dist {

TEST_CASE("communication volume moves by the payload bytes each collective hands over", "[dist]") {
  ProcessGroup& group = world();
  const int n = group.size();
  const CommunicationVolume before = communication_volume();

  Tensor gradients = zeros({10});  // float32: 40 bytes
  group.all_reduce(gradients)->wait();
  Tensor halves = zeros({5}, {.dtype = kBFloat16});  // 10 bytes
  group.broadcast(halves, 0)->wait();
  Tensor mine = zeros({3}, {.dtype = kInt64});  // the input counts: 24 bytes, not the n x 24 gathered
  Tensor gathered = zeros({3 * n}, {.dtype = kInt64});
  group.all_gather(mine, gathered)->wait();
  Tensor everything = zeros({2 * n}, {.dtype = kFloat64});  // the input counts: 16 n bytes
  Tensor shard = zeros({2}, {.dtype = kFloat64});
  group.reduce_scatter(everything, shard)->wait();
  group.barrier()->wait();  // a collective of no payload
  Tensor nothing = zeros({0});
  group.all_reduce(nothing)->wait();  // communicates nothing: not counted

  const CommunicationVolume after = communication_volume();
  CHECK(after.collectives - before.collectives == 5);
  CHECK(after.payload_bytes - before.payload_bytes == 40 + 10 + 24 + 16 * n);
}

TEST_CASE("communication volume does not count a collective refused for its arguments", "[dist]") {
  ProcessGroup& group = world();
  const CommunicationVolume before = communication_volume();
  Tensor transposed = zeros({4, 3}).t();
  REQUIRE_THROWS(group.all_reduce(transposed));
  const CommunicationVolume after = communication_volume();
  CHECK(after.collectives == before.collectives);
  CHECK(after.payload_bytes == before.payload_bytes);
}

TEST_CASE("communication volume adds up across threads and is read as one snapshot", "[dist]") {
  constexpr int kThreads = 4;
  constexpr int kRecordsPerThread = 20000;
  constexpr int64_t kBytesPerRecord = 3;
  const CommunicationVolume before = communication_volume();
  std::atomic<bool> writing{true};
  std::atomic<int64_t> torn_reads{0};
  // A reader beside the writers: each snapshot's bytes must be 3 per collective counted, which a
  // count and a byte total read separately (one collective apart) would break.
  std::thread reader([&] {
    while (writing.load()) {
      CommunicationVolume now = communication_volume();
      int64_t collectives = now.collectives - before.collectives;
      int64_t bytes = now.payload_bytes - before.payload_bytes;
      if (bytes != kBytesPerRecord * collectives) ++torn_reads;
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([] {
      for (int i = 0; i < kRecordsPerThread; ++i) record_collective(kBytesPerRecord);
    });
  }
  for (std::thread& writer : writers) writer.join();
  writing = false;
  reader.join();
  const CommunicationVolume after = communication_volume();
  CHECK(after.collectives - before.collectives == int64_t{kThreads} * kRecordsPerThread);
  CHECK(after.payload_bytes - before.payload_bytes == kBytesPerRecord * kThreads * kRecordsPerThread);
  CHECK(torn_reads.load() == 0);
}

}  // namespace dtrain::dist
