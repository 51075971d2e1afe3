#include "dist/process_group.h"

#include <algorithm>
#include <cstddef>
#include <numeric>
#include <tuple>

#include "core/allocator.h"
#include "core/error.h"
#include "core/ops/factory.h"
#include "core/profiler_recorder.h"
#include "dist/collective_checker.h"
#include "dist/communication_volume.h"
#include "dist/cuda_communication.h"
#include "dist/profiled_work.h"

namespace dtrain::dist {
namespace {

// The argument checks return the problem as text instead of raising, so that debug mode can send
// it to the other ranks first. Empty text: the argument is fine.

std::string tensor_error(const char* op, const char* argument, const Tensor& tensor) {
  if (!tensor.defined()) return detail::concat(op, ": expected a defined tensor as ", argument, ", got an undefined one");
  if (!tensor.is_contiguous()) {
    return detail::concat(op, ": expected a contiguous tensor as ", argument, ", got shape ", tensor.shape(),
                          " with strides ", strides_str(tensor.strides()), " (call .contiguous() first)");
  }
  if (!tensor.storage()->is_resident()) {
    return detail::concat(op, ": ", argument, " (shape ", tensor.shape(), ") has released storage; materialise it first");
  }
  return "";
}

std::string reduce_op_error(const char* op, DType dtype, ReduceOp reduce) {
  if (reduce == ReduceOp::Average && !is_floating(dtype)) {
    return detail::concat(op, ": ", reduce_op_name(reduce), " needs a floating dtype, got ", dtype,
                          " (an integer mean would be floored; use sum and divide)");
  }
  return "";
}

std::string same_kind_error(const char* op, const Tensor& input, const Tensor& output) {
  if (input.dtype() != output.dtype()) {
    return detail::concat(op, ": expected input and output of the same dtype, got ", input.dtype(), " and ", output.dtype());
  }
  if (input.device() != output.device()) {
    return detail::concat(op, ": expected input and output on the same device, got ", input.device(), " and ",
                          output.device());
  }
  return "";
}

// The first non-empty message.
template <typename... Messages>
std::string first_error(const Messages&... messages) {
  std::string first;
  ((first.empty() ? void(first = messages) : void()), ...);
  return first;
}

CollectiveCall describe(CollectiveKind kind, const Tensor& tensor) {
  CollectiveCall call;
  call.kind = kind;
  if (tensor.defined()) {
    call.dtype = tensor.dtype();
    call.device = tensor.device().type;
    call.numel = tensor.numel();
  } else {
    call.numel = -1;
  }
  return call;
}

// Issues a collective inside a profiler event with its bytes; while a profile records, the Work
// comes back wrapped so that its wait() is an event as well (dist/profiled_work.h).
template <typename Issue>
WorkHandle profiled(const char* name, const Tensor& buffer, Issue&& issue) {
  if (!profiler::detail::recording()) [[likely]] return issue();
  profiler::detail::Scope event(profiler::EventKind::Collective, name, {&buffer});
  event.set_bytes(static_cast<int64_t>(buffer.nbytes()));
  return profiled_work(issue(), name);
}

}  // namespace

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Average: return "average";
    case ReduceOp::Max: return "max";
  }
  return "unknown reduce op";
}

WorkHandle CommunicationBackend::send_receive(const std::vector<PointToPoint>& operations) {
  fail("send_receive: the ", name(), " communication backend has no point-to-point operations (",
       describe_point_to_point(operations), "); send CPU tensors instead");
}

ProcessGroup::ProcessGroup(std::vector<int> ranks, int rank_in_group) : ranks_(std::move(ranks)), rank_(rank_in_group) {
  if (ranks_.empty()) fail("ProcessGroup: expected at least one rank, got none");
  if (rank_ < 0 || rank_ >= size()) {
    fail("ProcessGroup: expected this rank's place in the group in [0, ", size(), "), got ", rank_);
  }
}

ProcessGroup::~ProcessGroup() = default;

std::string ProcessGroup::str() const {
  std::string text = detail::concat("group of ", size(), size() == 1 ? " rank [" : " ranks [");
  for (size_t i = 0; i < ranks_.size(); ++i) text += detail::concat(i == 0 ? "" : ", ", ranks_[i]);
  return text + "]";
}

void ProcessGroup::set_backend(DeviceType type, std::unique_ptr<CommunicationBackend> backend) {
  backends_[static_cast<int>(type)] = std::move(backend);
}

bool ProcessGroup::has_backend(DeviceType type) const { return backends_[static_cast<int>(type)] != nullptr; }

CommunicationBackend& ProcessGroup::backend_for(Device device) {
  auto& backend = backends_[static_cast<int>(device.type)];
  if (!backend && device.is_cuda() && has_backend(DeviceType::CPU)) {
    // Chosen at the group's first CUDA collective, which every rank issues (dist/cuda_communication.h).
    backend = create_cuda_backend(*this, device);
  }
  if (!backend) {
    fail("the ", str(), " has no communication backend for ", device.type == DeviceType::CPU ? "cpu" : "cuda",
         " tensors", device.is_cuda() ? " (the NCCL backend needs a CUDA build)" : "");
  }
  return *backend;
}

void ProcessGroup::check_call(CollectiveCall& call, const std::string& argument_error,
                              const std::vector<PointToPoint>* operations) {
  call.sequence = sequence_number_++;
  call.argument_error = argument_error;
  if (collective_checks_enabled()) {
    if (operations) {
      CollectiveChecker::check_point_to_point(*this, call, *operations);
    } else {
      CollectiveChecker::check(*this, call);
    }
    return;
  }
  if (!argument_error.empty()) fail(argument_error, " (", str(), ")");
}

WorkHandle ProcessGroup::all_reduce(Tensor& tensor, ReduceOp op) {
  CollectiveCall call = describe(CollectiveKind::AllReduce, tensor);
  call.op = op;
  std::string error = tensor_error("all_reduce", "tensor", tensor);
  if (error.empty()) error = reduce_op_error("all_reduce", tensor.dtype(), op);
  check_call(call, error);
  CommunicationBackend& backend = backend_for(tensor.device());
  if (tensor.numel() == 0) return completed_work();
  record_collective(static_cast<int64_t>(tensor.nbytes()));
  return profiled("all_reduce", tensor, [&] { return backend.all_reduce(tensor, op); });
}

WorkHandle ProcessGroup::broadcast(Tensor& tensor, int root) {
  CollectiveCall call = describe(CollectiveKind::Broadcast, tensor);
  call.root = root;
  std::string error = tensor_error("broadcast", "tensor", tensor);
  if (error.empty() && (root < 0 || root >= size())) {
    error = detail::concat("broadcast: expected a root rank in [0, ", size(), "), got ", root);
  }
  check_call(call, error);
  CommunicationBackend& backend = backend_for(tensor.device());
  if (tensor.numel() == 0) return completed_work();
  record_collective(static_cast<int64_t>(tensor.nbytes()));
  return profiled("broadcast", tensor, [&] { return backend.broadcast(tensor, root); });
}

WorkHandle ProcessGroup::all_gather(const Tensor& input, Tensor& output) {
  CollectiveCall call = describe(CollectiveKind::AllGather, input);
  std::string error = first_error(tensor_error("all_gather", "input", input), tensor_error("all_gather", "output", output));
  if (error.empty()) error = same_kind_error("all_gather", input, output);
  if (error.empty() && output.numel() != size() * input.numel()) {
    error = detail::concat("all_gather: expected an output of group size x input elements = ", size(), " x ",
                           input.numel(), " = ", size() * input.numel(), " elements, got ", output.numel(),
                           " (shape ", output.shape(), ")");
  }
  check_call(call, error);
  CommunicationBackend& backend = backend_for(input.device());
  if (input.numel() == 0) return completed_work();
  record_collective(static_cast<int64_t>(input.nbytes()));
  return profiled("all_gather", output, [&] { return backend.all_gather(input, output); });
}

WorkHandle ProcessGroup::reduce_scatter(const Tensor& input, Tensor& output, ReduceOp op) {
  CollectiveCall call = describe(CollectiveKind::ReduceScatter, input);
  call.op = op;
  std::string error =
      first_error(tensor_error("reduce_scatter", "input", input), tensor_error("reduce_scatter", "output", output));
  if (error.empty()) error = same_kind_error("reduce_scatter", input, output);
  if (error.empty()) error = reduce_op_error("reduce_scatter", input.dtype(), op);
  if (error.empty() && input.numel() != size() * output.numel()) {
    error = detail::concat("reduce_scatter: expected an input of group size x output elements = ", size(), " x ",
                           output.numel(), " = ", size() * output.numel(), " elements, got ", input.numel(),
                           " (shape ", input.shape(), ")");
  }
  check_call(call, error);
  CommunicationBackend& backend = backend_for(input.device());
  if (output.numel() == 0) return completed_work();
  record_collective(static_cast<int64_t>(input.nbytes()));
  return profiled("reduce_scatter", input, [&] { return backend.reduce_scatter(input, output, op); });
}

WorkHandle ProcessGroup::barrier() {
  CollectiveCall call = describe(CollectiveKind::Barrier, Tensor());
  call.numel = 0;
  check_call(call, "");
  record_collective(0);
  // A group with a CUDA backend synchronises that too, first: its barrier raises when the backend
  // can no longer be used (an NCCL communicator aborted by its watchdog), and waits for what is
  // queued on it, so a failure there is never hidden behind a CPU barrier that succeeds.
  if (CommunicationBackend* cuda = backends_[static_cast<int>(DeviceType::CUDA)].get()) cuda->barrier()->wait();
  return backend_for(Device::cpu()).barrier();
}

WorkHandle ProcessGroup::send_receive(std::vector<PointToPoint> operations) {
  CollectiveCall call;
  call.kind = CollectiveKind::SendReceive;
  call.numel = static_cast<int64_t>(operations.size());  // the operation count, for messages
  std::string error = point_to_point_error(operations, size(), rank_);
  if (error.empty() && !operations.empty()) {
    const Tensor& first = operations.front().tensor;
    call.dtype = first.dtype();
    call.device = first.device().type;
    // A group makes its CUDA backend collectively, at a collective every rank issues; a
    // point-to-point call does not involve every rank's tensors, and no CUDA backend but the
    // local one has point-to-point anyway.
    if (first.device().is_cuda() && !has_backend(DeviceType::CUDA)) {
      error = detail::concat("send_receive: point-to-point on cuda tensors is not available (neither NCCL nor the "
                             "staged path implements it); copy them to the CPU (",
                             describe_point_to_point(operations), ")");
    }
  }
  check_call(call, error, &operations);
  if (operations.empty()) return completed_work();
  CommunicationBackend& backend = backend_for(operations.front().tensor.device());
  int64_t sent_bytes = 0;
  for (const PointToPoint& operation : operations) {
    if (operation.kind == PointToPoint::Send) sent_bytes += static_cast<int64_t>(operation.tensor.nbytes());
  }
  record_collective(sent_bytes);  // the payload of a point-to-point call: what it sends
  if (!profiler::detail::recording()) [[likely]] return backend.send_receive(operations);
  std::vector<Tensor> tensors;
  for (const PointToPoint& operation : operations) tensors.push_back(operation.tensor);
  profiler::detail::Scope event(profiler::EventKind::Collective, "send_receive", tensors,
                                operations.front().tensor.device());
  event.set_bytes(sent_bytes);
  return profiled_work(backend.send_receive(operations), "send_receive");
}

std::shared_ptr<ProcessGroup> ProcessGroup::new_subgroup(const std::vector<int>& group_ranks) {
  // Validate before split() so that a bad list raises on every rank that passes it, before any
  // rank enters the exchange.
  if (group_ranks.empty()) fail("new_subgroup: expected at least one rank, got an empty list (", str(), ")");
  std::vector<int> seen(size(), 0);
  for (int member : group_ranks) {
    if (member < 0 || member >= size()) {
      fail("new_subgroup: expected group ranks in [0, ", size(), "), got ", member, " (", str(), ")");
    }
    if (seen[member]++) fail("new_subgroup: rank ", member, " is listed twice (", str(), ")");
  }
  auto position = std::find(group_ranks.begin(), group_ranks.end(), rank_);
  bool member = position != group_ranks.end();
  return split(member ? 0 : -1, member ? static_cast<int>(position - group_ranks.begin()) : 0);
}

std::shared_ptr<ProcessGroup> ProcessGroup::split(int color, int key) {
  CollectiveCall call = describe(CollectiveKind::Split, Tensor());
  call.numel = 0;
  check_call(call, "");

  // Every rank learns every rank's (color, key), so the members of its sub-group are known here
  // without asking the backend.
  std::vector<int64_t> colors_and_keys(2 * size());
  {
    MemoryTagScope communication(MemoryTag::Communication);
    Tensor mine = from_vector<int64_t>({color, key});
    Tensor all = empty({2 * static_cast<int64_t>(size())}, {.dtype = kInt64});
    backend_for(Device::cpu()).all_gather(mine, all)->wait();
    std::copy_n(all.data_ptr<int64_t>(), colors_and_keys.size(), colors_and_keys.begin());
  }

  // Every registered backend splits too (collective on each, in the same order on every rank).
  std::unique_ptr<CommunicationBackend> split_backends[kDeviceTypeCount];
  for (int type = 0; type < kDeviceTypeCount; ++type) {
    if (backends_[type]) split_backends[type] = backends_[type]->split(color, key);
  }
  if (color < 0) return nullptr;

  std::vector<int> members;  // group ranks of this rank's sub-group
  for (int member = 0; member < size(); ++member) {
    if (colors_and_keys[2 * member] == color) members.push_back(member);
  }
  std::stable_sort(members.begin(), members.end(),
                   [&](int a, int b) { return colors_and_keys[2 * a + 1] < colors_and_keys[2 * b + 1]; });
  std::vector<int> world_ranks;
  int rank_in_subgroup = 0;
  for (int member : members) {
    if (member == rank_) rank_in_subgroup = static_cast<int>(world_ranks.size());
    world_ranks.push_back(ranks_[member]);
  }
  auto subgroup = std::make_shared<ProcessGroup>(std::move(world_ranks), rank_in_subgroup);
  for (int type = 0; type < kDeviceTypeCount; ++type) {
    if (split_backends[type]) subgroup->set_backend(static_cast<DeviceType>(type), std::move(split_backends[type]));
  }
  return subgroup;
}

}  // namespace dtrain::dist
