#pragma once
// Dropout: zeroes each element with probability p while training and scales the rest by
// 1 / (1 - p), so evaluation (where it is the identity) needs no rescaling.
#include "core/random.h"
#include "layers/module.h"

namespace dtrain {

// The mask comes from generator, or dtrain's default generator (seeded by manual_seed).
Tensor dropout(const Tensor& x, double p, bool training, Generator* generator = nullptr);

class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);
  double p() const { return p_; }
  ModuleSettings describe() const override { return {{"p", setting_text(p_)}}; }

 protected:
  Tensor forward(const Tensor& x) override;

 private:
  double p_;
};

}  // namespace dtrain
