#pragma once
// CollectiveWatchdog: turns a collective that never completes (a peer died, or issued a different
// collective) into an error instead of a hang, as PyTorch's ProcessGroupNCCL watchdog does.
//
// The owner registers each collective it issues with a poll that says whether it has completed.
// A background thread polls the pending ones every poll_interval and drops the completed; when one
// is still pending timeout after it was issued, the watchdog records the failure, calls
// on_timeout once (the NCCL backend aborts its communicator there, which ends the collective's
// kernels) and stops watching. From then on check() — and watch() — raise the failure, naming
// the collective, how long it waited, the timeout, the rank and how to raise the timeout.
//
//   CollectiveWatchdog watchdog({.timeout = 10min, .rank = 1}, [&](auto&, auto) { abort(comm); });
//   watchdog.watch("NCCL all_reduce(...)", [event] { return cudaEventQuery(event) != cudaErrorNotReady; });
//   watchdog.check();  // before each later use
//
// One watchdog (one thread) per communicator: the owner's on_timeout then only ever sees its own
// communicator, which outlives the thread (the owner's destructor joins it first), and a process
// has only a few communicators (the world and some sub-groups).
//
// A collective counts as timed out only when a poll made after its deadline still says pending,
// so one that completes by its deadline never fires. Polls run on the watchdog's thread without
// the watchdog's lock held; they must not throw (one that does is recorded as the failure, and
// on_timeout is not called). Nothing escapes the thread: on_timeout's exceptions are appended to
// the recorded failure.
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace dtrain::dist {

class CollectiveWatchdog {
 public:
  using Clock = std::chrono::steady_clock;
  using TimeoutHandler = std::function<void(const std::string& description, Clock::duration elapsed)>;

  struct Options {
    std::chrono::milliseconds timeout{std::chrono::minutes(10)};
    std::chrono::milliseconds poll_interval{100};
    int rank = -1;  // named in the failure when >= 0
    // What the user sets to change the timeout, named in the failure.
    std::string timeout_setting = "DTRAIN_NCCL_TIMEOUT_SECONDS";
  };

  CollectiveWatchdog(Options options, TimeoutHandler on_timeout);
  ~CollectiveWatchdog();  // stops and joins the thread; pending entries are dropped, not waited for
  CollectiveWatchdog(const CollectiveWatchdog&) = delete;
  CollectiveWatchdog& operator=(const CollectiveWatchdog&) = delete;

  // Watches one collective, issued now. Raises the recorded failure, if any (the collective is
  // then not watched).
  void watch(std::string description, std::function<bool()> is_completed);
  // Raises the recorded failure as dtrain::Error; returns when there is none.
  void check() const;
  bool failed() const;
  // Collectives registered and not yet seen completed (for tests).
  size_t pending() const;

 private:
  struct Entry {
    std::string description;
    Clock::time_point issued;
    std::function<bool()> is_completed;
  };

  // What ended the watching: a collective past its deadline, or a poll that threw.
  struct Failure {
    std::string message;
    bool timed_out = false;
    std::string description;
    Clock::duration elapsed{};
  };

  void run();
  // Polls entries oldest first (without the lock) and drops the completed ones; stops at the
  // first failure and returns it.
  std::optional<Failure> poll(std::deque<Entry>& entries) const;
  std::string timeout_message(const std::string& description, Clock::duration elapsed) const;

  const Options options_;
  const TimeoutHandler on_timeout_;

  mutable std::mutex mutex_;
  std::condition_variable wakeup_;
  std::deque<Entry> entries_;  // in issue order
  size_t polling_ = 0;         // entries the thread has taken out to poll
  bool stopping_ = false;
  bool failed_ = false;
  std::string failure_;

  std::thread thread_;  // last: starts once everything above is initialised
};

}  // namespace dtrain::dist
