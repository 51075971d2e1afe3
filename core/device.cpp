#include "core/device.h"

namespace dtrain {

std::string Device::str() const {
  return type == DeviceType::CPU ? std::string("cpu") : "cuda:" + std::to_string(index);
}

std::ostream& operator<<(std::ostream& stream, const Device& device) { return stream << device.str(); }

}  // namespace dtrain
