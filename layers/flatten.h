#pragma once
// Flatten: merges dims start_dim..end_dim into one (by default all but the batch dim).
#include <cstdint>

#include "layers/module.h"

namespace dtrain {

class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1) : Module("Flatten"), start_dim_(start_dim), end_dim_(end_dim) {}
  ModuleSettings describe() const override {
    return {{"start_dim", setting_text(start_dim_)}, {"end_dim", setting_text(end_dim_)}};
  }

 protected:
  Tensor forward(const Tensor& x) override;

 private:
  int64_t start_dim_;
  int64_t end_dim_;
};

}  // namespace dtrain
