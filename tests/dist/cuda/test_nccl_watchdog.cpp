// The NCCL backend's watchdog on a real communicator (of one rank: all a single GPU allows). A
// collective that looks stuck — the test delay spins 3 s on the communication stream before it —
// outlives a 0.5 s timeout: the watchdog's thread must abort the communicator, and every later use
// of the group must raise, naming the collective, instead of hanging.
//
// Hidden ("[.nccl-watchdog]") and run as its own CTest entry: the abort leaves NCCL's queued
// kernel behind the spin, which must not disturb the other tests' process.
#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/dist/cuda/dist_cuda_test_support.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;
using Catch::Matchers::Contains;
using Clock = std::chrono::steady_clock;

TEST_CASE("cuda dist: an NCCL collective pending past the timeout aborts the communicator and every later use raises",
          "[cuda][nccl][.nccl-watchdog]") {
  auto group = cpu_group_of_one();
  dist::detail::NcclLibrary& library = dist::detail::nccl_library();
  dist::detail::NcclBackendOptions options;
  options.device = this_gpu().index;
  options.injected_delay_microseconds = 3'000'000;  // before each all-gather, on both streams
  options.timeout_seconds = 0.5;
  group->set_backend(DeviceType::CUDA, library.create_backend(library.new_unique_id(), options));

  const Device gpu = this_gpu();
  Tensor input = ones({1024}, {.dtype = kFloat32, .device = gpu});
  Tensor output = empty({1024}, {.dtype = kFloat32, .device = gpu});
  const Clock::time_point issued = Clock::now();
  WorkHandle work = group->all_gather(input, output);

  // is_completed() says "not yet" until the watchdog fires (after 0.5 s, polling every 0.1 s),
  // then raises — long before the 3 s spins end. Called outside Catch's macros, which would take
  // the exception as the check's own failure.
  std::string failure;
  int completed_before_the_failure = 0;
  while (failure.empty() && Clock::now() - issued < std::chrono::seconds(10)) {
    try {
      if (work->is_completed()) ++completed_before_the_failure;
    } catch (const Error& error) {
      failure = error.what();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - issued).count();
  INFO("is_completed() raised after " << seconds << " s: " << failure);
  CHECK(completed_before_the_failure == 0);
  REQUIRE_FALSE(failure.empty());
  CHECK(seconds >= 0.5);
  CHECK(seconds < 2.5);
  CHECK_THAT(failure, Contains("NCCL all_gather(float32, 1024 elements) over 1 ranks has not completed after"));
  CHECK_THAT(failure, Contains("(timeout 0.5 s; rank 0 of the group)"));
  CHECK_THAT(failure, Contains("DTRAIN_NCCL_TIMEOUT_SECONDS"));

  // Every later use raises the same failure, without touching the aborted communicator.
  CHECK_THROWS_WITH(work->wait(), Contains("NCCL all_gather(float32, 1024 elements)"));
  CHECK_THROWS_WITH(group->all_reduce(output), Contains("NCCL all_gather(float32, 1024 elements)"));
  // barrier() runs on the CPU backend, and on the CUDA one first: the aborted communicator raises.
  CHECK_THROWS_WITH(group->barrier(), Contains("has not completed after"));

  // Going away neither hangs nor destroys the aborted communicator (it waits for the spins).
  const Clock::time_point released = Clock::now();
  work.reset();
  group.reset();
  CHECK(Clock::now() - released < std::chrono::seconds(20));

  // The device still works: the abort did not leave the process's CUDA context broken.
  Tensor after = mul(ones({4}, {.dtype = kFloat32, .device = gpu}), 2.0);
  CHECK(after.to(Device::cpu()).to_vector<float>() == std::vector<float>{2, 2, 2, 2});
}
