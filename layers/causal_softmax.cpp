#include "layers/causal_softmax.h"

#include <limits>

#include "core/backend.h"
#include "core/graph.h"
#include "core/ops/elementwise.h"
#include "core/ops/factory.h"
#include "core/ops/softmax.h"
#include "core/ops/view.h"
#include "core/profiler_recorder.h"
#include "layers/attention.h"

namespace dtrain {

namespace detail {
Tensor causal_softmax_composed(const Tensor& scores) {
  const Tensor masked = masked_fill(scores, causal_mask(scores.size(-1), scores.device()),
                                    -std::numeric_limits<double>::infinity());
  return softmax(masked, -1);
}
}  // namespace detail

Tensor causal_softmax(const Tensor& scores) {
  check_defined(scores, "causal_softmax", "scores");
  if (scores.dim() < 2 || scores.size(-1) != scores.size(-2)) {
    fail("causal_softmax: expected scores [..., T, T], got shape ", scores.shape());
  }
  if (!is_floating(scores.dtype())) {
    fail("causal_softmax: expected floating scores, got ", scores.dtype());
  }
  profiler::detail::Scope profiled(profiler::EventKind::Op, "causal_softmax", {&scores}, "causal_softmax");
  const Tensor input = contiguous(scores);
  Tensor out = empty(input.shape(), {.dtype = input.dtype(), .device = input.device()});
  backend_for(input.device()).causal_softmax(input, out);
  if (any_requires_grad({&input})) {
    SavedTensor saved_out(out);
    record("causal_softmax", {input}, {out}, [saved_out](const GradientList& g) {
      const Tensor output = saved_out.unpack("causal_softmax");
      const Tensor grad_output = contiguous(g[0].dtype() == output.dtype() ? g[0] : g[0].to(output.dtype()));
      Tensor grad_input = empty(output.shape(), {.dtype = output.dtype(), .device = output.device()});
      backend_for(output.device()).causal_softmax_backward(grad_output, output, grad_input);
      return GradientList{grad_input};
    });
  }
  return out;
}

}  // namespace dtrain
