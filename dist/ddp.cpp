#include "dist/ddp.h"

#include <cmath>
#include <exception>
#include <utility>

#include "core/allocator.h"
#include "core/grad_mode.h"
#include "dist/bucket_assignment.h"
#include "dist/cuda_communication.h"
#include "dist/init.h"
#include "dist/model_consistency.h"
#include "dist/wait_all.h"

namespace dtrain::dist {
namespace {

constexpr const char* kWho = "DistributedDataParallel";

}  // namespace

NoSyncGuard::NoSyncGuard(DistributedDataParallel& ddp) : ddp_(ddp), previous_(ddp.sync_enabled_) {
  ddp_.sync_enabled_ = false;
}

NoSyncGuard::~NoSyncGuard() { ddp_.sync_enabled_ = previous_; }

DistributedDataParallel::DistributedDataParallel(std::shared_ptr<Module> module, DistributedDataParallelOptions options)
    : module_(std::move(module)), options_(std::move(options)) {
  if (!module_) fail(kWho, ": expected a module, got null");
  if (options_.process_group) {
    group_ = options_.process_group;
  } else {
    if (!is_initialized()) fail(kWho, ": dist::init() has not run (call it first; without mpirun it makes a world of one)");
    group_ = world_ptr();
  }
  GradientReducerOptions reducer_options{
      .first_bucket_cap_bytes = megabytes_to_bytes(options_.first_bucket_cap_mb, kWho, "first_bucket_cap_mb"),
      .bucket_cap_bytes = megabytes_to_bytes(options_.bucket_cap_mb, kWho, "bucket_cap_mb"),
      .find_unused_parameters = options_.find_unused_parameters,
      .max_bytes_in_flight = megabytes_to_bytes(options_.reduce_in_flight_cap_mb, kWho, "reduce_in_flight_cap_mb"),
      .owner = kWho,
  };

  // Everything the ranks will pair up must agree before any of it is paired.
  std::vector<NamedTensor> parameters = module_->named_parameters();
  std::vector<NamedTensor> buffers = module_->named_buffers();
  std::vector<NamedTensor> checked;
  for (const NamedTensor& parameter : parameters) checked.push_back(parameter);
  for (const auto& [name, buffer] : buffers) checked.emplace_back("buffer " + name, buffer);
  check_same_tensors_on_all_ranks(*group_, checked, kWho);
  RunSettings settings = model_settings(*module_);
  settings.insert(settings.end(), options_.settings.begin(), options_.settings.end());
  check_same_settings_on_all_ranks(*group_, settings, kWho);

  std::vector<Tensor> to_broadcast;
  for (const NamedTensor& parameter : parameters) to_broadcast.push_back(parameter.second);
  for (const NamedTensor& buffer : buffers) {
    to_broadcast.push_back(buffer.second);
    buffers_.push_back(buffer.second);
  }
  broadcast_from_rank0(to_broadcast);

  std::vector<NamedTensor> trainable;
  for (const NamedTensor& parameter : parameters) {
    if (parameter.second.requires_grad()) trainable.push_back(parameter);
  }
  reducer_ = std::make_unique<GradientReducer>(group_, std::move(trainable), std::move(reducer_options));
}

DistributedDataParallel::~DistributedDataParallel() = default;

void DistributedDataParallel::broadcast_from_rank0(const std::vector<Tensor>& tensors) {
  if (group_->size() == 1) return;
  NoGradGuard no_grad;
  // Every broadcast is started before the first is waited for, so they pipeline.
  struct InFlight {
    Tensor target;
    Tensor staging;  // the contiguous copy a non-contiguous tensor travels in
    WorkHandle work;
  };
  std::vector<InFlight> in_flight;
  for (const Tensor& tensor : tensors) {
    InFlight entry{tensor, tensor, nullptr};
    if (!tensor.is_contiguous()) {
      MemoryTagScope tag(MemoryTag::Communication);
      entry.staging = tensor.contiguous();
    }
    entry.work = group_->broadcast(entry.staging, 0);
    in_flight.push_back(std::move(entry));
  }
  FirstError first_error;
  for (InFlight& entry : in_flight) {
    first_error.run([&entry] {
      entry.work->wait();
      if (!entry.staging.is_same(entry.target)) entry.target.copy_(entry.staging);
    });
  }
  first_error.rethrow();
}

Tensor DistributedDataParallel::operator()(const Tensor& input) {
  reducer_->before_forward();
  // Only in training: ranks may evaluate on their own, and a collective that only some ranks
  // enter would wait forever.
  if (options_.broadcast_buffers && !buffers_.empty() && module_->is_training()) broadcast_from_rank0(buffers_);
  Tensor output = (*module_)(input);
  inject_delay_after_forward(output);  // test only (DTRAIN_TEST_INJECT_DELAYS_US)
  if (sync_enabled_ && grad_mode_enabled() && output.defined() && output.requires_grad()) {
    reducer_->prepare_for_backward(output);
  }
  return output;
}

void DistributedDataParallel::finish_gradient_synchronization() { reducer_->finish(); }

void DistributedDataParallel::register_comm_hook(CommunicationHook hook) {
  reducer_->set_communication_hook(std::move(hook));
}

std::vector<std::vector<std::string>> DistributedDataParallel::bucket_parameter_names() const {
  std::vector<std::vector<std::string>> names;
  for (const GradientBucket& bucket : reducer_->buckets()) {
    std::vector<std::string>& bucket_names = names.emplace_back();
    for (size_t index : bucket.parameter_indices()) bucket_names.push_back(reducer_->parameter_names()[index]);
  }
  return names;
}

}  // namespace dtrain::dist
