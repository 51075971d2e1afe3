#include "dist/communication_thread.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <exception>

#include "core/error.h"

namespace dtrain::dist {

namespace {

// A task's arrival should not take the core from the thread that computes: SCHED_BATCH threads
// do not preempt on wake-up (Linux). The communication thread then starts a task at once on an
// idle core, else when the core's current thread blocks or its scheduler slice ends; and an
// issuing thread that waits for the task at once runs it itself (help_until_done), with no
// hand-off to this thread and back — a hand-off whose wake-ups, on a loaded machine, can give the
// core to another process for a whole slice. Best effort: where the policy is refused the thread
// keeps the default one, which costs only speed, so the result is not checked.
void stay_off_busy_cores_on_wake_up() {
  sched_param parameters{};
  pthread_setschedparam(pthread_self(), SCHED_BATCH, &parameters);
}

}  // namespace

// The Work of a queued task: waiting for it first lends the waiting thread to the queue.
class CommunicationThread::QueuedWork : public PendingWork {
 public:
  explicit QueuedWork(CommunicationThread& thread) : thread_(thread) {}
  void wait() override {
    // Only an unfinished task touches the queue: a finished one may outlive the thread.
    if (!is_completed()) thread_.help_until_done(*this);
    PendingWork::wait();
  }

 private:
  CommunicationThread& thread_;
};

CommunicationThread::CommunicationThread(std::chrono::milliseconds timeout, TimeoutHandler on_timeout)
    : timeout_(timeout), on_timeout_(std::move(on_timeout)) {
  server_ = std::thread([this] { serve(); });
  if (timeout_.count() > 0) watchdog_ = std::thread([this] { watch(); });
}

CommunicationThread::~CommunicationThread() { stop(); }

WorkHandle CommunicationThread::enqueue(std::string description, Task task) {
  auto work = std::make_shared<QueuedWork>(*this);
  {
    std::lock_guard lock(mutex_);
    if (stopping_) fail("cannot start ", description, ": dist::finalize() has run and the communication thread has ended");
    queue_.push_back(Entry{std::move(description), std::move(task), work});
  }
  queue_changed_.notify_one();
  return work;
}

void CommunicationThread::enqueue_if_running(std::string description, Task task) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    queue_.push_back(Entry{std::move(description), std::move(task), nullptr});
  }
  queue_changed_.notify_one();
}

void CommunicationThread::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
    stopping_ = true;
  }
  queue_changed_.notify_one();
  if (server_.joinable()) server_.join();  // it drains the queue first
  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
  }
  watchdog_wakeup_.notify_one();
  if (watchdog_.joinable()) watchdog_.join();
}

bool CommunicationThread::is_running() const {
  std::lock_guard lock(mutex_);
  return !stopping_;
}

void CommunicationThread::serve() {
  stay_off_busy_cores_on_wake_up();
  std::unique_lock lock(mutex_);
  while (true) {
    // A task runs at a time, here or on a helping waiter.
    queue_changed_.wait(lock, [this] { return !running_ && (stopping_ || !queue_.empty()); });
    if (queue_.empty()) return;  // stopping, and nothing left to run
    run_front(lock);
  }
}

void CommunicationThread::help_until_done(PendingWork& work) {
  std::unique_lock lock(mutex_);
  // The tasks before work's come first (issue order); a task running elsewhere means the
  // communication thread has the queue, and the waiter just sleeps until work is done.
  while (!running_ && !queue_.empty() && !work.is_completed()) run_front(lock);
}

void CommunicationThread::run_front(std::unique_lock<std::mutex>& lock) {
  Entry entry = std::move(queue_.front());
  queue_.pop_front();
  running_ = true;
  running_description_ = entry.description;
  running_since_ = std::chrono::steady_clock::now();
  lock.unlock();

  std::exception_ptr error;
  try {
    entry.task();
  } catch (...) {
    error = std::current_exception();
  }
  // Release what the task holds (tensors) before the waiter resumes, so the caller sees the
  // same storage use counts it would after a synchronous call.
  entry.task = nullptr;
  if (entry.work) {
    if (error) entry.work->fail(error);
    else entry.work->complete();
  }

  lock.lock();
  running_ = false;
  queue_changed_.notify_one();  // after a helping waiter: the communication thread takes over
}

void CommunicationThread::watch() {
  // Checking ten times per timeout bounds the overshoot at 10% (and at one second).
  const auto period = std::clamp<std::chrono::milliseconds>(timeout_ / 10, std::chrono::milliseconds(10),
                                                            std::chrono::milliseconds(1000));
  std::unique_lock lock(mutex_);
  while (!stopped_) {
    watchdog_wakeup_.wait_for(lock, period, [this] { return stopped_; });
    if (stopped_ || !running_) continue;
    auto running_for = std::chrono::steady_clock::now() - running_since_;
    if (running_for < timeout_) continue;
    std::string message = detail::concat(
        running_description_, " has not completed after ",
        std::chrono::duration_cast<std::chrono::seconds>(running_for).count(),
        " s (DTRAIN_COLLECTIVE_TIMEOUT): another rank probably failed before issuing it or issued a different "
        "collective (DTRAIN_DEBUG_COLLECTIVES=1 checks that); ending the job instead of hanging");
    lock.unlock();
    on_timeout_(message);
    return;  // the handler did not end the job: report once, then stay out of the way
  }
}

}  // namespace dtrain::dist
