#pragma once
// Grad mode: whether ops record history. Off inside NoGradGuard (optimizer updates, evaluation,
// the backward pass itself). Per thread, as in PyTorch.

namespace dtrain {

bool grad_mode_enabled();
void set_grad_mode_enabled(bool enabled);

class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace dtrain
