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

}  // namespace dtrain::dist
