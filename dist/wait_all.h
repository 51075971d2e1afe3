#pragma once
// Waiting for many collectives at once. Every one is waited for even after an earlier one fails:
// a collective still in flight could write into a buffer the caller frees once it returns. The
// first error is then rethrown, the others dropped (they are usually the same failure seen again).
#include <cstddef>
#include <exception>
#include <functional>
#include <utility>
#include <vector>

#include "dist/work.h"

namespace dtrain::dist {

// Runs actions that must all run even when some throw, and keeps the first error.
class FirstError {
 public:
  template <class Action>
  void run(Action&& action) {
    try {
      std::forward<Action>(action)();
    } catch (...) {
      if (!error_) error_ = std::current_exception();
    }
  }
  bool failed() const { return static_cast<bool>(error_); }
  // Rethrows the first error, if any.
  void rethrow() const;

 private:
  std::exception_ptr error_;
};

// Waits for every work (null handles are skipped), resets each handle, then rethrows the first
// error, if any.
void wait_all(std::vector<WorkHandle>& works);

// Issues count collectives in order (issue(i) starts the i-th and returns its Work), stops issuing
// at the first that raises, waits for every one issued, then rethrows the first error.
void issue_all_and_wait(size_t count, const std::function<WorkHandle(size_t)>& issue);

}  // namespace dtrain::dist
