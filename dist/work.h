#pragma once
// Work: the handle an asynchronous collective returns. wait() blocks until it is done and
// rethrows its error, if any, on the calling thread.
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>

namespace dtrain::dist {

class Work {
 public:
  virtual ~Work() = default;
  // True once the operation has finished, successfully or not (wait() then returns or raises
  // without blocking).
  virtual bool is_completed() = 0;
  virtual void wait() = 0;
};

using WorkHandle = std::shared_ptr<Work>;

// A Work that is complete when created (world of one, zero-size tensors).
WorkHandle completed_work();

// A Work that another thread finishes (the communication thread, once the collective ran):
// exactly one call to complete() or fail(); wait() blocks until then and, after fail(), rethrows
// the error on every call.
class PendingWork : public Work {
 public:
  bool is_completed() override;
  void wait() override;

  void complete();
  void fail(std::exception_ptr error);

 private:
  void finish(std::exception_ptr error);

  std::mutex mutex_;
  std::condition_variable finished_;
  bool done_ = false;
  std::exception_ptr error_;
};

}  // namespace dtrain::dist
