#pragma once
// CommunicationThread: runs the MPI calls of collectives once dist::init is done. Collectives are
// queued as tasks and run in the order they were issued — MPI needs every rank to start the
// collectives of a communicator in the same order — while the thread that issued them goes on
// computing: that is where communication overlaps compute.
//
// One queue and one thread for every group of the process, and one task at a time: the MPI
// calls never overlap, so MPI_THREAD_SERIALIZED is all MPI needs to provide.
//
// A thread that waits for a task nobody runs yet runs it itself (and the tasks queued before it,
// in order) instead of waking the communication thread and sleeping until it is done: the
// collective issued and waited for at once (a broadcast at start-up, the last gradient bucket)
// then costs no thread hand-off, which on a loaded machine can wait a whole scheduler slice.
//
// A watchdog ends the job when one task runs longer than a timeout: a collective that some rank
// never joins (it raised before issuing it, or issued a different one) would otherwise wait
// forever, and a hang is the one failure a distributed job must not have.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "dist/work.h"

namespace dtrain::dist {

class CommunicationThread {
 public:
  using Task = std::function<void()>;
  // Called on the watchdog's thread with a message that names the stuck task. It should end the
  // job (MPI_Abort); if it returns, the watchdog stops watching.
  using TimeoutHandler = std::function<void(const std::string& message)>;

  // A zero timeout means no watchdog.
  CommunicationThread(std::chrono::milliseconds timeout, TimeoutHandler on_timeout);
  ~CommunicationThread();  // stop()
  CommunicationThread(const CommunicationThread&) = delete;
  CommunicationThread& operator=(const CommunicationThread&) = delete;

  // Queues task behind everything queued before. The Work completes once the task has run, or
  // fails with what it threw. description names the task in the watchdog's message. Raises
  // after stop().
  WorkHandle enqueue(std::string description, Task task);
  // Queues task if the thread still runs, else drops it: for cleanup that MPI_Finalize does
  // anyway once the thread is gone (freeing a communicator).
  void enqueue_if_running(std::string description, Task task);
  // Runs everything queued, then ends the threads. Idempotent.
  void stop();
  bool is_running() const;

 private:
  class QueuedWork;
  struct Entry {
    std::string description;
    Task task;
    std::shared_ptr<PendingWork> work;  // null for enqueue_if_running's tasks
  };

  void serve();
  void watch();
  // With the lock held and no task running: takes the first task and runs it (lock released
  // meanwhile), then completes its Work.
  void run_front(std::unique_lock<std::mutex>& lock);
  // Runs queued tasks on the calling thread up to and including work's, while no other thread
  // runs tasks; returns when work is done or another thread has taken over.
  void help_until_done(PendingWork& work);

  const std::chrono::milliseconds timeout_;
  const TimeoutHandler on_timeout_;

  mutable std::mutex mutex_;
  std::condition_variable queue_changed_;
  std::deque<Entry> queue_;
  bool stopping_ = false;
  bool stopped_ = false;

  // The task running now (on the communication thread or a helping waiter), for the watchdog.
  bool running_ = false;
  std::string running_description_;
  std::chrono::steady_clock::time_point running_since_;
  std::condition_variable watchdog_wakeup_;

  std::thread server_;
  std::thread watchdog_;
};

}  // namespace dtrain::dist
