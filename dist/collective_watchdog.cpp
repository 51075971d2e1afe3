#include "dist/collective_watchdog.h"

#include <exception>
#include <utility>

#include "core/error.h"

namespace dtrain::dist {
namespace {

// "0.25 s", "600 s": milliseconds are enough for a timeout.
std::string seconds_text(CollectiveWatchdog::Clock::duration duration) {
  const auto milliseconds = std::chrono::duration_cast<std::chrono::milliseconds>(duration).count();
  return detail::concat(static_cast<double>(milliseconds) / 1000.0, " s");
}

std::string current_exception_text() {
  try {
    throw;
  } catch (const std::exception& error) {
    return error.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

}  // namespace

CollectiveWatchdog::CollectiveWatchdog(Options options, TimeoutHandler on_timeout)
    : options_(std::move(options)), on_timeout_(std::move(on_timeout)) {
  if (options_.timeout.count() <= 0) fail("CollectiveWatchdog: expected a timeout > 0, got ", options_.timeout.count(), " ms");
  if (options_.poll_interval.count() <= 0) {
    fail("CollectiveWatchdog: expected a poll interval > 0, got ", options_.poll_interval.count(), " ms");
  }
  thread_ = std::thread([this] { run(); });
}

CollectiveWatchdog::~CollectiveWatchdog() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wakeup_.notify_all();
  thread_.join();
}

void CollectiveWatchdog::watch(std::string description, std::function<bool()> is_completed) {
  {
    std::lock_guard lock(mutex_);
    if (failed_) fail(failure_);
    const bool was_idle = entries_.empty() && polling_ == 0;
    entries_.push_back({std::move(description), Clock::now(), std::move(is_completed)});
    if (!was_idle) return;
  }
  wakeup_.notify_all();  // the thread sleeps without a deadline while there is nothing to watch
}

void CollectiveWatchdog::check() const {
  std::lock_guard lock(mutex_);
  if (failed_) fail(failure_);
}

bool CollectiveWatchdog::failed() const {
  std::lock_guard lock(mutex_);
  return failed_;
}

size_t CollectiveWatchdog::pending() const {
  std::lock_guard lock(mutex_);
  return entries_.size() + polling_;
}

void CollectiveWatchdog::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wakeup_.wait(lock, [this] { return stopping_ || !entries_.empty(); });
    if (stopping_) return;
    wakeup_.wait_for(lock, options_.poll_interval, [this] { return stopping_; });
    if (stopping_) return;

    // Poll without the lock, so that issuing a collective never waits for a poll.
    std::deque<Entry> polled;
    polled.swap(entries_);
    polling_ = polled.size();
    lock.unlock();
    std::optional<Failure> failure = poll(polled);
    lock.lock();
    for (Entry& entry : entries_) polled.push_back(std::move(entry));  // registered meanwhile: younger
    entries_.swap(polled);
    polling_ = 0;
    if (!failure) continue;

    // Record before on_timeout acts, so that whoever sees its effect (an aborted communicator)
    // finds the failure recorded. Then stop watching: the group is unusable from here on.
    failed_ = true;
    failure_ = failure->message;
    std::deque<Entry> dropped;
    dropped.swap(entries_);
    lock.unlock();
    dropped.clear();  // releases what the polls hold (events), outside the lock
    if (!failure->timed_out) return;
    try {
      on_timeout_(failure->description, failure->elapsed);
    } catch (...) {
      const std::string why = current_exception_text();
      std::lock_guard relock(mutex_);
      failure_ += detail::concat(" (reacting to the timeout failed too: ", why, ")");
    }
    return;
  }
}

std::optional<CollectiveWatchdog::Failure> CollectiveWatchdog::poll(std::deque<Entry>& entries) const {
  for (auto entry = entries.begin(); entry != entries.end();) {
    // The time is taken before the poll: a collective that completes by its deadline is seen
    // completed by this poll, so it never times out.
    const Clock::time_point now = Clock::now();
    bool completed = false;
    try {
      completed = entry->is_completed();
    } catch (...) {
      Failure failure;
      failure.message = detail::concat("the collective watchdog could not tell whether ", entry->description,
                                       " completed: ", current_exception_text());
      return failure;
    }
    if (completed) {
      entry = entries.erase(entry);
      continue;
    }
    const Clock::duration elapsed = now - entry->issued;
    if (elapsed >= options_.timeout) {
      return Failure{.message = timeout_message(entry->description, elapsed),
                     .timed_out = true,
                     .description = entry->description,
                     .elapsed = elapsed};
    }
    ++entry;
  }
  return std::nullopt;
}

std::string CollectiveWatchdog::timeout_message(const std::string& description, Clock::duration elapsed) const {
  const std::string rank = options_.rank >= 0 ? detail::concat("; rank ", options_.rank, " of the group") : "";
  return detail::concat(description, " has not completed after ", seconds_text(elapsed), " (timeout ",
                        seconds_text(options_.timeout), rank, "): another rank probably failed, exited or issued a different collective "
                        "(DTRAIN_DEBUG_COLLECTIVES=1 checks that every rank issues the same ones). The group's "
                        "communication was aborted and every later use of the group raises. If the collective is "
                        "only slow, set ",
                        options_.timeout_setting, " to more seconds.");
}

}  // namespace dtrain::dist
