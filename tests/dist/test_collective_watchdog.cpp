// The collective watchdog (dist/collective_watchdog.h) with fake collectives — polls over flags
// and clocks, no device — and DTRAIN_NCCL_TIMEOUT_SECONDS, which sets the NCCL backend's timeout.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "dist/collective_watchdog.h"
#include "dist/cuda_communication.h"
#include "tests/support/scoped_environment.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using Clock = CollectiveWatchdog::Clock;
using dtrain::test::ScopedEnvironment;

namespace {

// Waits (polling) until condition holds or limit passes; returns whether it held. The limits are
// generous: the machine running the tests may be loaded, and a limit only bounds a failing test.
template <typename Condition>
bool eventually(Condition condition, Clock::duration limit = 10s) {
  const Clock::time_point give_up = Clock::now() + limit;
  while (!condition()) {
    if (Clock::now() > give_up) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// What on_timeout saw.
struct TimeoutLog {
  std::atomic<int> calls{0};
  std::string description;           // written before calls is incremented
  Clock::duration elapsed{};
  CollectiveWatchdog::TimeoutHandler handler() {
    return [this](const std::string& what, Clock::duration how_long) {
      description = what;
      elapsed = how_long;
      calls.fetch_add(1);
    };
  }
};

CollectiveWatchdog::Options options(std::chrono::milliseconds timeout, std::chrono::milliseconds poll = 20ms,
                                    int rank = -1) {
  CollectiveWatchdog::Options result;
  result.timeout = timeout;
  result.poll_interval = poll;
  result.rank = rank;
  return result;
}

std::string error_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}


}  // namespace

TEST_CASE("collective watchdog: a collective that never completes fires once after the timeout and check raises",
          "[dist][watchdog-unit]") {
  TimeoutLog log;
  CollectiveWatchdog watchdog(options(200ms, 20ms, 3), log.handler());
  const std::string description = "NCCL all_reduce(float32, 1024 elements) over 4 ranks";
  const Clock::time_point issued = Clock::now();
  watchdog.watch(description, [] { return false; });
  watchdog.watch("NCCL broadcast(int64, 1 elements) over 4 ranks", [] { return false; });
  CHECK_NOTHROW(watchdog.check());
  CHECK_FALSE(watchdog.failed());

  REQUIRE(eventually([&] { return log.calls.load() > 0; }));
  const Clock::duration waited = Clock::now() - issued;
  CHECK(waited >= 200ms);
  CHECK(log.description == description);  // the oldest pending collective
  CHECK(log.elapsed >= 200ms);
  CHECK(log.elapsed <= waited);

  CHECK(watchdog.failed());
  const std::string message = error_of([&] { watchdog.check(); });
  CHECK_THAT(message, Contains(description + " has not completed after"));
  CHECK_THAT(message, Contains("(timeout 0.2 s; rank 3 of the group)"));
  CHECK_THAT(message, Contains("DTRAIN_NCCL_TIMEOUT_SECONDS"));
  CHECK_THAT(message, Contains("every later use of the group raises"));
  // Every later use raises the same failure, and a new collective is not watched.
  CHECK(error_of([&] { watchdog.check(); }) == message);
  CHECK(error_of([&] { watchdog.watch("NCCL barrier", [] { return true; }); }) == message);
  // Fired once, then stopped watching (the second overdue collective does not fire again).
  std::this_thread::sleep_for(100ms);
  CHECK(log.calls.load() == 1);
  CHECK(watchdog.pending() == 0);
}

TEST_CASE("collective watchdog: the reported wait is how long the collective was pending", "[dist][watchdog-unit]") {
  TimeoutLog log;
  CollectiveWatchdog watchdog(options(300ms, 20ms), log.handler());
  watchdog.watch("slow collective", [] { return false; });
  REQUIRE(eventually([&] { return log.calls.load() > 0; }));
  const std::string message = error_of([&] { watchdog.check(); });
  // "after 0.316 s": the elapsed time on_timeout got (to the millisecond), at least the timeout.
  const std::string before = "slow collective has not completed after ";
  REQUIRE_THAT(message, Contains(before));
  const double reported = std::stod(message.substr(message.find(before) + before.size()));
  CHECK(reported >= 0.3);
  CHECK(reported == Approx(std::chrono::duration<double>(log.elapsed).count()).margin(0.0015));
  CHECK_THAT(message, Contains(" s (timeout 0.3 s)"));
  // No rank given: none named.
  CHECK_THAT(message, !Contains("of the group)"));
}

TEST_CASE("collective watchdog: collectives that complete in time never fire and are dropped", "[dist][watchdog-unit]") {
  TimeoutLog log;
  // A timeout long against the 50 ms the collectives take, so a loaded machine cannot make them late.
  CollectiveWatchdog watchdog(options(1000ms, 10ms), log.handler());
  std::vector<std::shared_ptr<std::atomic<bool>>> done;
  for (int index = 0; index < 5; ++index) {
    done.push_back(std::make_shared<std::atomic<bool>>(false));
    watchdog.watch("collective " + std::to_string(index), [flag = done.back()] { return flag->load(); });
  }
  CHECK(watchdog.pending() == 5);
  std::this_thread::sleep_for(50ms);
  for (auto& flag : done) flag->store(true);
  REQUIRE(eventually([&] { return watchdog.pending() == 0; }));
  // Dropped entries release what their polls hold (the NCCL backend's completion events).
  for (auto& flag : done) CHECK(flag.use_count() == 1);
  std::this_thread::sleep_for(300ms);  // more polls: nothing may fire for what completed
  CHECK(log.calls.load() == 0);
  CHECK_NOTHROW(watchdog.check());
  CHECK_FALSE(watchdog.failed());
}

TEST_CASE("collective watchdog: a collective that completes exactly at its deadline never fires",
          "[dist][watchdog-unit]") {
  // Each fake collective reports completion from its deadline on. The watchdog judges a timeout
  // only from a poll made after the deadline, which then sees it complete: however the polls and
  // the deadlines interleave, nothing may fire.
  TimeoutLog log;
  constexpr auto timeout = 100ms;
  CollectiveWatchdog watchdog(options(timeout, 7ms), log.handler());
  for (int index = 0; index < 20; ++index) {
    // Taken before watch(): no later than the watchdog's own issue time, so no later a deadline.
    const Clock::time_point deadline = Clock::now() + timeout;
    watchdog.watch("racing collective " + std::to_string(index), [deadline] { return Clock::now() >= deadline; });
    std::this_thread::sleep_for(3ms);
  }
  REQUIRE(eventually([&] { return watchdog.pending() == 0; }));
  CHECK(log.calls.load() == 0);
  CHECK_NOTHROW(watchdog.check());
}

TEST_CASE("collective watchdog: collectives watched from several threads while others complete",
          "[dist][watchdog-unit]") {
  TimeoutLog log;
  CollectiveWatchdog watchdog(options(2000ms, 1ms), log.handler());
  std::vector<std::thread> issuers;
  for (int thread = 0; thread < 4; ++thread) {
    issuers.emplace_back([&, thread] {
      for (int index = 0; index < 100; ++index) {
        const Clock::time_point done_at = Clock::now() + std::chrono::microseconds(37 * ((index + thread) % 50));
        watchdog.watch("collective", [done_at] { return Clock::now() >= done_at; });
      }
    });
  }
  for (auto& issuer : issuers) issuer.join();
  REQUIRE(eventually([&] { return watchdog.pending() == 0; }));
  CHECK(log.calls.load() == 0);
  CHECK_NOTHROW(watchdog.check());
}

TEST_CASE("collective watchdog: destruction with pending collectives returns at once", "[dist][watchdog-unit]") {
  TimeoutLog log;
  auto held = std::make_shared<int>(0);
  const Clock::time_point start = Clock::now();
  {
    CollectiveWatchdog watchdog(options(3600s, 50ms), log.handler());
    watchdog.watch("never completes", [held] { return false; });
    watchdog.watch("polls slowly", [held] {
      std::this_thread::sleep_for(30ms);
      return false;
    });
    std::this_thread::sleep_for(120ms);  // let the thread be inside a poll or between polls
  }
  CHECK(Clock::now() - start < 2s);
  CHECK(held.use_count() == 1);  // the pending entries were dropped
  CHECK(log.calls.load() == 0);
  {
    CollectiveWatchdog idle(options(3600s, 50ms), log.handler());  // never watched anything
  }
  CHECK(Clock::now() - start < 4s);
}

TEST_CASE("collective watchdog: errors of polls and of on_timeout are recorded, not thrown from the thread",
          "[dist][watchdog-unit]") {
  SECTION("a poll that throws") {
    TimeoutLog log;
    CollectiveWatchdog watchdog(options(3600s, 10ms), log.handler());
    watchdog.watch("NCCL all_gather", []() -> bool { throw std::runtime_error("device lost"); });
    REQUIRE(eventually([&] { return watchdog.failed(); }));
    const std::string message = error_of([&] { watchdog.check(); });
    CHECK_THAT(message, Contains("could not tell whether NCCL all_gather completed: device lost"));
    CHECK(log.calls.load() == 0);  // not a timeout
  }
  SECTION("an on_timeout that throws") {
    std::atomic<int> calls{0};
    CollectiveWatchdog watchdog(options(50ms, 10ms), [&](const std::string&, Clock::duration) {
      calls.fetch_add(1);
      throw Error("ncclCommAbort failed");
    });
    watchdog.watch("NCCL reduce_scatter", [] { return false; });
    REQUIRE(eventually([&] {
      return calls.load() == 1 && error_of([&] { watchdog.check(); }).find("ncclCommAbort") != std::string::npos;
    }));
    const std::string message = error_of([&] { watchdog.check(); });
    CHECK_THAT(message, Contains("NCCL reduce_scatter has not completed after"));
    CHECK_THAT(message, Contains("(reacting to the timeout failed too: "));
    CHECK_THAT(message, Contains("ncclCommAbort failed)"));
  }
}

TEST_CASE("collective watchdog: a timeout or poll interval that is not positive is refused", "[dist][watchdog-unit]") {
  TimeoutLog log;
  CHECK_THROWS_WITH(CollectiveWatchdog(options(0ms), log.handler()), Contains("expected a timeout > 0, got 0 ms"));
  CHECK_THROWS_WITH(CollectiveWatchdog(options(1s, 0ms), log.handler()), Contains("expected a poll interval > 0"));
}

TEST_CASE("DTRAIN_NCCL_TIMEOUT_SECONDS is read and checked", "[dist][watchdog-unit]") {
  {
    ScopedEnvironment unset("DTRAIN_NCCL_TIMEOUT_SECONDS", nullptr);
    CHECK(nccl_timeout_seconds_from_environment() == 600.0);
  }
  {
    ScopedEnvironment empty("DTRAIN_NCCL_TIMEOUT_SECONDS", "");
    CHECK(nccl_timeout_seconds_from_environment() == 600.0);
  }
  {
    ScopedEnvironment set("DTRAIN_NCCL_TIMEOUT_SECONDS", "90");
    CHECK(nccl_timeout_seconds_from_environment() == 90.0);
  }
  {
    ScopedEnvironment fraction("DTRAIN_NCCL_TIMEOUT_SECONDS", "2.5");
    CHECK(nccl_timeout_seconds_from_environment() == 2.5);
  }
  for (const char* refused : {"0", "-5", "ten", "10s", "inf", "nan"}) {
    ScopedEnvironment bad("DTRAIN_NCCL_TIMEOUT_SECONDS", refused);
    const std::string message = error_of([] { nccl_timeout_seconds_from_environment(); });
    CHECK_THAT(message, Contains("DTRAIN_NCCL_TIMEOUT_SECONDS"));
    CHECK_THAT(message, Contains(std::string("'") + refused + "'"));
  }
}
