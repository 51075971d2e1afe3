#pragma once
// gradcheck: compares the Jacobian autograd computes with central finite differences, in
// float64, one output element and one input element at a time (so keep the tensors small).
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dtrain::autograd {

struct GradcheckOptions {
  double eps = 1e-6;   // finite-difference step
  double atol = 1e-5;  // |analytic - numeric| <= atol + rtol * |numeric|
  double rtol = 1e-3;
};

struct GradcheckResult {
  bool passed = false;
  double max_error = 0.0;  // the largest |analytic - numeric| seen
  std::string message;     // where and by how much it failed
};

using DifferentiableFunction = std::function<Tensor(const std::vector<Tensor>& inputs)>;

// inputs: float64 tensors; those that require grad are checked. fn must be deterministic.
GradcheckResult gradcheck(const DifferentiableFunction& fn, const std::vector<Tensor>& inputs,
                          GradcheckOptions options = {});

}  // namespace dtrain::autograd
