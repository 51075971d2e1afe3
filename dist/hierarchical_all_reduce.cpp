// Uses MPI directly (MpiBackend::reduce): compiled only when MPI is enabled, like dist/mpi_*.cpp.
#ifdef DTRAIN_WITH_MPI

#include "dist/hierarchical_all_reduce.h"

#include <utility>
#include <vector>

#include "core/error.h"
#include "dist/mpi_backend.h"
#include "dist/wait_all.h"

namespace dtrain::dist {
namespace {

std::unique_ptr<MpiBackend> as_mpi_backend(std::unique_ptr<CommunicationBackend> backend) {
  if (!backend) return nullptr;
  auto* mpi = dynamic_cast<MpiBackend*>(backend.get());
  if (mpi == nullptr) fail("HierarchicalAllReduce: expected the split of an MPI backend, got a '", backend->name(), "' backend");
  backend.release();
  return std::unique_ptr<MpiBackend>(mpi);
}

// The Work of several collectives queued in order: complete when all are; wait() waits for every
// one (a later step may still write into the tensor after an earlier one failed) and rethrows the
// first error.
class StepsWork : public Work {
 public:
  explicit StepsWork(std::vector<WorkHandle> steps) : steps_(std::move(steps)) {}

  bool is_completed() override {
    for (const WorkHandle& step : steps_) {
      if (!step->is_completed()) return false;
    }
    return true;
  }

  void wait() override {
    std::vector<WorkHandle> steps = steps_;  // wait_all resets the handles it waited for
    wait_all(steps);
  }

 private:
  std::vector<WorkHandle> steps_;
};

}  // namespace

HierarchicalAllReduce::HierarchicalAllReduce(std::unique_ptr<MpiBackend> flat, int host) : flat_(std::move(flat)) {
  if (!flat_) fail("HierarchicalAllReduce: expected an MPI backend, got none");
  if (host < 0) fail("HierarchicalAllReduce: expected a host index >= 0, got ", host);
  // Both splits are collective over flat's ranks, in this order on every rank. Key 0 keeps the
  // ranks of a host (and the leaders) in flat's rank order.
  host_ = as_mpi_backend(flat_->split(host, 0));
  const bool leads = host_->rank() == 0;
  leaders_ = as_mpi_backend(flat_->split(leads ? 0 : -1, 0));
}

HierarchicalAllReduce::~HierarchicalAllReduce() = default;

int HierarchicalAllReduce::ranks_on_this_host() const { return host_->size(); }

WorkHandle HierarchicalAllReduce::all_reduce(Tensor& tensor, ReduceOp op) {
  // Average: the steps sum, and the leader divides once by the whole group's size.
  const ReduceOp step_op = op == ReduceOp::Average ? ReduceOp::Sum : op;
  const bool host_has_others = host_->size() > 1;
  std::vector<WorkHandle> steps;
  if (host_has_others) steps.push_back(host_->reduce(tensor, step_op, 0));
  if (leaders_) {
    if (leaders_->size() > 1) steps.push_back(leaders_->all_reduce(tensor, step_op));
    if (op == ReduceOp::Average) steps.push_back(leaders_->divide(tensor, flat_->size()));
  }
  if (host_has_others) steps.push_back(host_->broadcast(tensor, 0));
  if (steps.empty()) return completed_work();  // a group of one rank
  if (steps.size() == 1) return steps.front();
  return std::make_shared<StepsWork>(std::move(steps));
}

WorkHandle HierarchicalAllReduce::broadcast(Tensor& tensor, int root) { return flat_->broadcast(tensor, root); }

WorkHandle HierarchicalAllReduce::all_gather(const Tensor& input, Tensor& output) {
  return flat_->all_gather(input, output);
}

WorkHandle HierarchicalAllReduce::reduce_scatter(const Tensor& input, Tensor& output, ReduceOp op) {
  return flat_->reduce_scatter(input, output, op);
}

WorkHandle HierarchicalAllReduce::barrier() { return flat_->barrier(); }

WorkHandle HierarchicalAllReduce::send_receive(const std::vector<PointToPoint>& operations) {
  return flat_->send_receive(operations);
}

std::unique_ptr<CommunicationBackend> HierarchicalAllReduce::split(int color, int key) {
  return flat_->split(color, key);
}

}  // namespace dtrain::dist

#endif  // DTRAIN_WITH_MPI
