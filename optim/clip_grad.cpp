#include "optim/clip_grad.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/grad_mode.h"
#include "core/ops/elementwise.h"
#include "core/ops/reduce.h"
#include "core/ops/unary.h"
#include "optim/fused_cpu.h"

namespace dtrain::optim {

namespace {

// Elements per partial sum. Fixed, so that the order of additions, and so the norm to the last
// bit, does not depend on the thread count (an OpenMP reduction's order does).
constexpr int64_t kElementsPerPartial = 16384;

// sum over i of term(grad[i]) in double: chunk sums in parallel, then the chunks in order.
template <typename T, typename Term>
double chunked_sum(const T* grad, int64_t n, Term term) {
  const int64_t chunks = (n + kElementsPerPartial - 1) / kElementsPerPartial;
  std::vector<double> partials(static_cast<size_t>(chunks), 0.0);
#pragma omp parallel for if (n >= kMinElementsToParallelize)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t begin = chunk * kElementsPerPartial, end = std::min(n, begin + kElementsPerPartial);
    double partial = 0.0;
#pragma omp simd reduction(+ : partial)
    for (int64_t i = begin; i < end; ++i) partial += term(static_cast<double>(grad[i]));
    partials[static_cast<size_t>(chunk)] = partial;
  }
  double total = 0.0;
  for (double partial : partials) total += partial;
  return total;
}

// sum |g|^p, or max |g| for the infinity norm, over one contiguous CPU buffer; the same bits at
// any thread count.
template <typename T>
double norm_contribution_loop(const T* grad, int64_t n, double norm_type) {
  if (std::isinf(norm_type)) {
    double result = 0.0;  // a maximum does not depend on the order
#pragma omp parallel for reduction(max : result) if (n >= kMinElementsToParallelize)
    for (int64_t i = 0; i < n; ++i) result = std::fmax(result, std::fabs(static_cast<double>(grad[i])));
    // fmax skips NaN; a NaN gradient must still make the norm NaN.
    return result + chunked_sum(grad, n, [](double g) { return g * 0.0; });
  }
  if (norm_type == 2.0) return chunked_sum(grad, n, [](double g) { return g * g; });
  return chunked_sum(grad, n, [norm_type](double g) { return std::pow(std::fabs(g), norm_type); });
}

double norm_contribution(const Tensor& grad, double norm_type) {
  if (fusable_on_cpu({grad})) {
    if (grad.dtype() == kFloat32) return norm_contribution_loop(grad.data_ptr<float>(), grad.numel(), norm_type);
    return norm_contribution_loop(grad.data_ptr<double>(), grad.numel(), norm_type);
  }
  // Any other device or layout: tensor ops, in float32 at least (16-bit sums lose too much).
  Tensor magnitude = abs(grad.dtype() == kFloat64 ? grad : grad.to(kFloat32));
  if (std::isinf(norm_type)) {
    return max(magnitude).item() + sum(mul(magnitude, 0.0)).item();  // the second term carries a NaN
  }
  if (norm_type == 2.0) return sum(mul(magnitude, magnitude)).item();
  return sum(pow(magnitude, norm_type)).item();
}

}  // namespace

double total_grad_norm(const std::vector<Tensor>& parameters, double norm_type) {
  if (!(norm_type > 0.0)) fail("total_grad_norm: expected norm_type > 0 (or kInfinityNorm), got ", norm_type);
  NoGradGuard no_grad;
  double accumulated = 0.0;
  for (const Tensor& param : parameters) {
    const Tensor grad = param.grad();
    if (!grad.defined() || grad.numel() == 0) continue;
    const double contribution = norm_contribution(grad, norm_type);
    if (!std::isinf(norm_type)) accumulated += contribution;
    else if (std::isnan(contribution) || std::isnan(accumulated)) accumulated = std::nan("");
    else accumulated = std::fmax(accumulated, contribution);
  }
  if (std::isinf(norm_type) || norm_type == 1.0) return accumulated;
  if (norm_type == 2.0) return std::sqrt(accumulated);
  return std::pow(accumulated, 1.0 / norm_type);
}

double clip_grad_norm(const std::vector<Tensor>& parameters, double max_norm, double norm_type) {
  if (!(max_norm >= 0.0)) fail("clip_grad_norm: expected max_norm >= 0, got ", max_norm);
  const double total = total_grad_norm(parameters, norm_type);
  const double clip_coefficient = max_norm / (total + 1e-6);
  if (std::isfinite(total) && clip_coefficient < 1.0) {
    NoGradGuard no_grad;
    for (const Tensor& param : parameters) {
      Tensor grad = param.grad();
      if (grad.defined()) grad.mul_(clip_coefficient);
    }
  }
  return total;
}

}  // namespace dtrain::optim
