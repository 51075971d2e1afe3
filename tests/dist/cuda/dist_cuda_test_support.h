#pragma once
// What the GPU tests of dist share: this rank's GPU, groups of one rank on NCCL (each rank its
// own communicator: what a single GPU can test of the NCCL backend) and on the CPU, and the CPU
// copy of a set of named tensors.
#include <catch2/catch.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/core.h"
#include "core/cuda_device.h"
#include "dist/cuda_communication.h"
#include "dist/init.h"
#include "dist/local_backend.h"
#include "dist/nccl_library.h"
#include "dist/process_group.h"
#include "dist/staged_backend.h"
#include "layers/module.h"

namespace dtrain::dist::testing {

inline Device this_gpu() { return Device::cuda(cuda::current_device()); }

inline std::shared_ptr<ProcessGroup> cpu_group_of_one() {
  auto group = std::make_shared<ProcessGroup>(std::vector<int>{rank()}, 0);
  group->set_backend(DeviceType::CPU, std::make_unique<LocalBackend>());
  return group;
}

// A group of this rank alone whose CUDA tensors go through NCCL (a communicator of one rank),
// with the test delays given (0: none).
inline std::shared_ptr<ProcessGroup> nccl_group_of_one(int64_t injected_delay_microseconds = 0) {
  auto group = cpu_group_of_one();
  detail::NcclLibrary& library = detail::nccl_library();
  detail::NcclBackendOptions options;
  options.device = this_gpu().index;
  options.injected_delay_microseconds = injected_delay_microseconds;
  group->set_backend(DeviceType::CUDA, library.create_backend(library.new_unique_id(), options));
  return group;
}

// A group of this rank alone whose CUDA tensors take the staged path (host copies around the CPU
// backend): what several ranks on one GPU use, testable without mpirun.
inline std::shared_ptr<ProcessGroup> staged_group_of_one() {
  auto group = cpu_group_of_one();
  group->set_backend(DeviceType::CUDA, std::make_unique<StagedBackend>(group->backend_for(Device::cpu())));
  return group;
}

inline std::vector<NamedTensor> on_cpu(const std::vector<NamedTensor>& tensors) {
  std::vector<NamedTensor> copies;
  for (const auto& [name, tensor] : tensors) copies.emplace_back(name, tensor.to(Device::cpu()));
  return copies;
}

}  // namespace dtrain::dist::testing
