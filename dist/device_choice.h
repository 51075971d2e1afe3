#pragma once
// The device a training process runs on, from what a user asks for:
//   "auto"  a GPU when one is visible, else the CPU
//   "cuda"  a GPU; raises a dtrain::Error with the reason (no plugin, no device, a driver too
//           old) when none is usable
//   "cpu"   the CPU
// The GPU is cuda:(local rank mod visible devices), the local rank from the job's node layout
// (dist/node_layout.h, by hostname): 8 ranks on a node of 8 GPUs get one each; 2 ranks on one GPU
// share it (their CUDA collectives then take the staged path, dist/cuda_communication.h). The
// chosen GPU becomes this thread's current device. dist::init() must have run.
#include <string>
#include <vector>

#include "core/device.h"

namespace dtrain::dist {

inline const std::vector<std::string> kDeviceChoices = {"auto", "cpu", "cuda"};

Device choose_training_device(const std::string& choice);

// "rank 1/4 on host-b cuda:1": where this rank runs, for a start line.
std::string placement_text(Device device);

}  // namespace dtrain::dist
