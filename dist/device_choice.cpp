#include "dist/device_choice.h"

#include "core/cuda_device.h"
#include "core/error.h"
#include "dist/init.h"

namespace dtrain::dist {

Device choose_training_device(const std::string& choice) {
  if (choice != "auto" && choice != "cpu" && choice != "cuda") {
    fail("choose_training_device: expected auto, cpu or cuda, got '", choice, "'");
  }
  if (choice == "cpu") return Device::cpu();
  if (!cuda::is_available()) {
    if (choice == "auto") return Device::cpu();
    fail("choose_training_device: cuda asked for, but no GPU is usable: ", cuda::unavailable_reason());
  }
  Device device = cuda::device_for_local_rank(local_rank());
  cuda::set_device(device.index);
  return device;
}

std::string placement_text(Device device) {
  return "rank " + std::to_string(rank()) + "/" + std::to_string(world_size()) + " on " + hostname() + " " +
         device.str();
}

}  // namespace dtrain::dist
