// The gradient-synchronisation engine (dist/gradient_synchronizer.h) on its own, with works that
// complete only when waited for (a collective the communication thread has not run yet): buckets
// launch in launch order whatever order their members become ready in, and the cap on bytes in
// flight holds — where, without it, every bucket would be in flight at once.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "dist/gradient_synchronizer.h"

using namespace dtrain::dist;

namespace {

// Completes on its first wait(); fails then when told to.
class LazyWork : public Work {
 public:
  explicit LazyWork(std::vector<size_t>& waited, size_t bucket, bool fails)
      : waited_(waited), bucket_(bucket), fails_(fails) {}
  bool is_completed() override { return done_; }
  void wait() override {
    if (!done_) waited_.push_back(bucket_);
    done_ = true;
    if (fails_) throw std::runtime_error("bucket " + std::to_string(bucket_) + " failed");
  }

 private:
  std::vector<size_t>& waited_;
  size_t bucket_;
  bool fails_;
  bool done_ = false;
};

struct Recorder {
  std::vector<size_t> started;
  std::vector<size_t> waited;
  std::vector<size_t> completed;
  std::vector<size_t> bytes_in_flight_at_start;
  size_t failing_bucket = SIZE_MAX;
  GradientSynchronizer* engine = nullptr;

  BucketActions actions() {
    return {.start =
                [this](size_t bucket) -> WorkHandle {
                  started.push_back(bucket);
                  bytes_in_flight_at_start.push_back(engine->bytes_in_flight());
                  return std::make_shared<LazyWork>(waited, bucket, bucket == failing_bucket);
                },
            .complete = [this](size_t bucket) { completed.push_back(bucket); }};
  }
};

}  // namespace

TEST_CASE("The gradient engine launches buckets in launch order whatever order their gradients arrive in",
          "[gradient-engine]") {
  Recorder recorder;
  GradientSynchronizer engine({2, 1, 1}, {8, 4, 4}, recorder.actions(), 0);
  recorder.engine = &engine;
  // Bucket 2 is ready first, then bucket 1: neither may go before bucket 0.
  engine.mark_ready(2);
  engine.launch_ready();
  engine.mark_ready(1);
  engine.launch_ready();
  CHECK(recorder.started.empty());
  engine.mark_ready(0);
  engine.launch_ready();
  CHECK(recorder.started.empty());  // bucket 0 still waits for its second member
  engine.mark_ready(0);
  engine.launch_ready();
  CHECK(recorder.started == std::vector<size_t>{0, 1, 2});
  CHECK(engine.all_launched());
  CHECK(engine.bytes_in_flight() == 16);
  engine.finish();
  CHECK(recorder.waited == std::vector<size_t>{0, 1, 2});
  CHECK(recorder.completed == std::vector<size_t>{0, 1, 2});
  CHECK(engine.bytes_in_flight() == 0);
  CHECK(engine.peak_bytes_in_flight() == 16);
  // A bucket cannot take more ready members than it has.
  engine.begin();
  engine.mark_ready(1);
  CHECK_THROWS_WITH(engine.mark_ready(1), Catch::Contains("more ready members than it has"));
}

TEST_CASE("The gradient engine keeps the bucket bytes in flight under its cap", "[gradient-engine]") {
  // Six buckets of 10, 20, 30, 10, 10 and 40 bytes, each ready at once, with works that never
  // complete by themselves: without a cap all six (120 bytes) are in flight at the end.
  const std::vector<size_t> sizes{10, 20, 30, 10, 10, 40};
  for (size_t cap : {size_t{0}, size_t{30}, size_t{45}}) {
    INFO("cap " << cap);
    Recorder recorder;
    GradientSynchronizer engine(std::vector<size_t>(sizes.size(), 1), sizes, recorder.actions(), cap);
    recorder.engine = &engine;
    for (size_t bucket = 0; bucket < sizes.size(); ++bucket) {
      engine.acquire(bucket);  // as ZeRO-2 does before allocating a bucket's buffer
      engine.mark_ready(bucket);
      engine.launch_ready();
    }
    if (cap == 0) {
      CHECK(recorder.waited.empty());
      CHECK(engine.peak_bytes_in_flight() == 120);
    } else {
      // Worked by hand, bytes in flight after each bucket enters. Cap 30: 10, 30, then 30 makes
      // 0 and 1 leave (30), 10 makes 2 leave (10), 20, then 40 makes 3 and 4 leave: 40 alone.
      // Cap 45: 10, 30, then 30 makes 0 and 1 leave (30), 40, then 10 makes 2 leave (20), then
      // 40 makes 3 and 4 leave: 40. Either way the peak is the largest bucket, 40.
      CHECK(engine.peak_bytes_in_flight() == 40);
      CHECK(engine.peak_bytes_in_flight() <= std::max<size_t>(cap, 40));
      for (size_t bytes : recorder.bytes_in_flight_at_start) CHECK(bytes <= std::max<size_t>(cap, 40));
      // The buckets that made room were waited for oldest first and completed.
      CHECK(recorder.waited == recorder.completed);
      for (size_t i = 1; i < recorder.waited.size(); ++i) CHECK(recorder.waited[i] == recorder.waited[i - 1] + 1);
    }
    engine.finish();
    CHECK(recorder.completed == std::vector<size_t>{0, 1, 2, 3, 4, 5});
    CHECK(engine.bytes_in_flight() == 0);
  }
}

TEST_CASE("The gradient engine waits for every bucket when one fails and raises the first error",
          "[gradient-engine]") {
  Recorder recorder;
  recorder.failing_bucket = 1;
  GradientSynchronizer engine({1, 1, 1}, {4, 4, 4}, recorder.actions(), 0);
  recorder.engine = &engine;
  engine.mark_ready(0);
  engine.launch_ready();
  // finish() launches the two buckets whose members never came, then waits for all three.
  CHECK_THROWS_WITH(engine.finish(), "bucket 1 failed");
  CHECK(recorder.started == std::vector<size_t>{0, 1, 2});
  CHECK(recorder.waited == std::vector<size_t>{0, 1, 2});
  CHECK(recorder.completed == std::vector<size_t>{0, 2});  // the failed one is not completed
  CHECK(engine.bytes_in_flight() == 0);
  engine.begin();  // nothing left in flight: a new iteration may start
  CHECK(engine.launched_count() == 0);
}
