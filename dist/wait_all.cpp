#include "dist/wait_all.h"

namespace dtrain::dist {

void FirstError::rethrow() const {
  if (error_) std::rethrow_exception(error_);
}

void wait_all(std::vector<WorkHandle>& works) {
  FirstError first_error;
  for (WorkHandle& work : works) {
    if (!work) continue;
    first_error.run([&work] { work->wait(); });
    work = nullptr;
  }
  first_error.rethrow();
}

void issue_all_and_wait(size_t count, const std::function<WorkHandle(size_t)>& issue) {
  std::vector<WorkHandle> works;
  FirstError first_error;
  for (size_t i = 0; i < count && !first_error.failed(); ++i) {
    first_error.run([&] { works.push_back(issue(i)); });
  }
  first_error.run([&] { wait_all(works); });
  first_error.rethrow();
}

}  // namespace dtrain::dist
