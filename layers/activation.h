#pragma once
// Activation modules: thin wrappers of the elementwise ops, so they can sit in a Sequential.
#include "core/ops/unary.h"
#include "layers/module.h"

namespace dtrain {

class ReLU : public Module {
 public:
  ReLU() : Module("ReLU") {}

 protected:
  Tensor forward(const Tensor& x) override;
};

class GELU : public Module {
 public:
  // None: x * Phi(x) with erf (PyTorch's default); Tanh: the approximation GPT-2 uses.
  explicit GELU(GeluApproximation approximation = GeluApproximation::None) : Module("GELU"), approximation_(approximation) {}
  GeluApproximation approximation() const { return approximation_; }
  ModuleSettings describe() const override {
    return {{"approximation", approximation_ == GeluApproximation::Tanh ? "tanh" : "none"}};
  }

 protected:
  Tensor forward(const Tensor& x) override;

 private:
  GeluApproximation approximation_;
};

}  // namespace dtrain
