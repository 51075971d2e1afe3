#include "dist/work.h"

#include <utility>

namespace dtrain::dist {
namespace {

class CompletedWork : public Work {
 public:
  bool is_completed() override { return true; }
  void wait() override {}
};

}  // namespace

WorkHandle completed_work() {
  // One shared instance: it has no state, and collectives on a world of one should cost nothing.
  static const WorkHandle instance = std::make_shared<CompletedWork>();
  return instance;
}

bool PendingWork::is_completed() {
  std::lock_guard lock(mutex_);
  return done_;
}

void PendingWork::wait() {
  std::unique_lock lock(mutex_);
  finished_.wait(lock, [this] { return done_; });
  if (error_) std::rethrow_exception(error_);
}

void PendingWork::complete() { finish(nullptr); }

void PendingWork::fail(std::exception_ptr error) { finish(std::move(error)); }

void PendingWork::finish(std::exception_ptr error) {
  {
    std::lock_guard lock(mutex_);
    done_ = true;
    error_ = std::move(error);
  }
  finished_.notify_all();
}

}  // namespace dtrain::dist
