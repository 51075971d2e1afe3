#include "autograd/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <sstream>

#include "autograd/engine.h"
#include "core/grad_mode.h"
#include "core/ops/factory.h"

namespace dtrain::autograd {
namespace {

// Address of logical element `flat` (row-major) of a CPU float64 tensor with any strides.
double* element(const Tensor& tensor, int64_t flat) {
  int64_t offset = 0;
  for (int64_t d = tensor.dim() - 1; d >= 0; --d) {
    int64_t size = tensor.shape()[d];
    offset += (flat % size) * tensor.strides()[d];
    flat /= size;
  }
  return static_cast<double*>(tensor.data()) + offset;
}

std::vector<double> evaluate(const DifferentiableFunction& fn, const std::vector<Tensor>& inputs) {
  NoGradGuard no_grad;
  Tensor out = fn(inputs);
  if (out.dtype() != kFloat64) fail("gradcheck: expected the function to return float64, got ", out.dtype());
  return out.to_vector<double>();
}

}  // namespace

GradcheckResult gradcheck(const DifferentiableFunction& fn, const std::vector<Tensor>& inputs, GradcheckOptions options) {
  std::vector<Tensor> checked;
  for (const Tensor& input : inputs) {
    check_defined(input, "gradcheck", "input");
    if (input.dtype() != kFloat64 || !input.device().is_cpu()) {
      fail("gradcheck: expected float64 CPU inputs, got ", input.dtype(), " on ", input.device());
    }
    if (input.requires_grad()) checked.push_back(input);
  }
  if (checked.empty()) fail("gradcheck: no input requires grad, so there is nothing to check");

  Tensor output = fn(inputs);
  if (!output.requires_grad()) fail("gradcheck: the function's output does not require grad");
  const int64_t output_count = output.numel();

  // analytic[k][j][i]: d output j / d element i of checked input k, one backward per output element.
  std::vector<std::vector<std::vector<double>>> analytic(checked.size());
  for (size_t k = 0; k < checked.size(); ++k) {
    analytic[k].assign(static_cast<size_t>(output_count), std::vector<double>(static_cast<size_t>(checked[k].numel())));
  }
  for (int64_t j = 0; j < output_count; ++j) {
    Tensor selector = zeros(output.shape(), {.dtype = kFloat64});
    *element(selector, j) = 1.0;
    std::vector<Tensor> gradients = grad({output}, checked, {selector}, /*retain_graph=*/true, /*allow_unused=*/true);
    for (size_t k = 0; k < checked.size(); ++k) {
      if (!gradients[k].defined()) continue;  // no path: the Jacobian row is zero
      std::vector<double> row = gradients[k].to_vector<double>();
      analytic[k][static_cast<size_t>(j)] = row;
    }
  }

  GradcheckResult result;
  result.passed = true;
  std::ostringstream report;
  for (size_t k = 0; k < checked.size(); ++k) {
    const Tensor& input = checked[k];
    for (int64_t i = 0; i < input.numel(); ++i) {
      double* value = element(input, i);
      const double original = *value;
      *value = original + options.eps;
      std::vector<double> plus = evaluate(fn, inputs);
      *value = original - options.eps;
      std::vector<double> minus = evaluate(fn, inputs);
      *value = original;
      for (int64_t j = 0; j < output_count; ++j) {
        double numeric = (plus[static_cast<size_t>(j)] - minus[static_cast<size_t>(j)]) / (2.0 * options.eps);
        double computed = analytic[k][static_cast<size_t>(j)][static_cast<size_t>(i)];
        double error = std::abs(computed - numeric);
        result.max_error = std::max(result.max_error, error);
        if (!(error <= options.atol + options.rtol * std::abs(numeric)) && result.passed) {
          result.passed = false;
          report << "input " << k << " (shape " << input.shape() << ") element " << i << ", output element " << j
                 << ": analytic " << computed << " vs numeric " << numeric;
        }
      }
    }
  }
  result.message = result.passed ? "ok" : report.str();
  return result;
}

}  // namespace dtrain::autograd
