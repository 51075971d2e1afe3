#include "dist/local_backend.h"

#include <cstddef>
#include <memory>
#include <vector>

#include "core/backend.h"
#include "core/error.h"
#include "core/grad_mode.h"

namespace dtrain::dist {
namespace {

// The bytes of input into output (same dtype and element count, both contiguous), through the
// device's copy kernel: unlike Tensor::copy_ it leaves the version counter alone, as a collective
// on more ranks does.
void copy_elements(const Tensor& input, Tensor& output) {
  if (input.data() == output.data()) return;  // in place: input is output's only slot
  NoGradGuard no_grad;
  Tensor flat_input = input.view({input.numel()});
  Tensor flat_output = output.view({output.numel()});
  dtrain::backend_for(output.device()).copy(flat_input, flat_output);
}

}  // namespace

// With one rank, sum, max and average of one value are that value.
WorkHandle LocalBackend::all_reduce(Tensor& tensor, ReduceOp op) { return completed_work(); }

WorkHandle LocalBackend::broadcast(Tensor& tensor, int root) { return completed_work(); }

WorkHandle LocalBackend::all_gather(const Tensor& input, Tensor& output) {
  copy_elements(input, output);
  return completed_work();
}

WorkHandle LocalBackend::reduce_scatter(const Tensor& input, Tensor& output, ReduceOp op) {
  copy_elements(input, output);
  return completed_work();
}

WorkHandle LocalBackend::barrier() { return completed_work(); }

WorkHandle LocalBackend::send_receive(const std::vector<PointToPoint>& operations) {
  // The group checked that every operation addresses rank 0 and that the sends pair with the
  // receives (dist/point_to_point.h); the k-th send fills the k-th receive.
  std::vector<const PointToPoint*> sends;
  std::vector<const PointToPoint*> receives;
  for (const PointToPoint& operation : operations) {
    (operation.kind == PointToPoint::Send ? sends : receives).push_back(&operation);
  }
  if (sends.size() != receives.size()) {
    fail("send_receive: in a world of one every send to rank 0 needs a receive from rank 0, got ",
         describe_point_to_point(operations));
  }
  for (size_t k = 0; k < sends.size(); ++k) {
    Tensor target = receives[k]->tensor;
    copy_elements(sends[k]->tensor, target);
  }
  return completed_work();
}

std::unique_ptr<CommunicationBackend> LocalBackend::split(int color, int key) {
  if (color < 0) return nullptr;
  return std::make_unique<LocalBackend>();
}

}  // namespace dtrain::dist
