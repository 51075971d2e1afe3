#include "dist/profiled_work.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/profiler_recorder.h"
#include "core/tensor.h"

namespace dtrain::dist {
namespace {

class ProfiledWork final : public Work {
 public:
  ProfiledWork(WorkHandle work, std::string collective) : work_(std::move(work)), collective_(std::move(collective)) {}

  bool is_completed() override { return work_->is_completed(); }
  void wait() override {
    profiler::detail::Scope waiting(profiler::EventKind::CollectiveWait, collective_, std::vector<Tensor>{},
                                    Device::cpu());
    work_->wait();
  }

 private:
  WorkHandle work_;
  std::string collective_;
};

}  // namespace

WorkHandle profiled_work(WorkHandle work, std::string collective) {
  return std::make_shared<ProfiledWork>(std::move(work), std::move(collective));
}

}  // namespace dtrain::dist
