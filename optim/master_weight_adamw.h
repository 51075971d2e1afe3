#pragma once
// AdamW for a model that computes in bfloat16 or float16 while the optimizer keeps float32 master
// weights and float32 moments: each step updates every master with the device's fused
// multi-tensor kernel (Backend::adam_update; one launch per 24 parameters on CUDA) and writes the
// rounded result back into the 16-bit parameter the model uses. Float32 and float64 parameters
// get no master (they are their own). Loss scaling for float16 is the caller's (optim/loss_scaler.h).
//
//   model->to(Device::cuda(0)).to(kBFloat16);
//   optim::MasterWeightAdamW optimizer(model->parameters(), {.lr = 6e-4, .weight_decay = 0.1});
//   for (...) {
//     optimizer.zero_grad();
//     cross_entropy(model->forward(tokens), targets).backward();
//     optimizer.step();
//   }
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/backend.h"
#include "core/tensor.h"
#include "optim/adamw.h"

namespace dtrain::optim {

class MasterWeightAdamW {
 public:
  MasterWeightAdamW(std::vector<Tensor> params, AdamWOptions options = {});

  // One update of every parameter that has a gradient.
  void step();
  void zero_grad();

  int64_t steps() const { return step_; }
  double lr() const { return options_.lr; }
  void set_lr(double lr) { options_.lr = lr; }
  // The float32 master of parameter i (the parameter itself when it has none).
  const Tensor& master(size_t i) const;

 private:
  std::vector<AdamTensors> parameters_;  // grad filled in at each step
  AdamWOptions options_;
  int64_t step_ = 0;
};

}  // namespace dtrain::optim
