#pragma once
#include <cstdint>
#include <ostream>
#include <string>

namespace dtrain {

enum class DeviceType : uint8_t { CPU, CUDA };
inline constexpr int kDeviceTypeCount = 2;

// Where a tensor's bytes live. A real part of every tensor: ops dispatch on it in one place.
struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static Device cpu() { return Device{DeviceType::CPU, 0}; }
  static Device cuda(int index = 0) { return Device{DeviceType::CUDA, index}; }
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  std::string str() const;  // "cpu", "cuda:1"
  friend bool operator==(const Device&, const Device&) = default;
};

std::ostream& operator<<(std::ostream& stream, const Device& device);

}  // namespace dtrain
