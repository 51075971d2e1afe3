#include "dist/communication_volume.h"

#include <mutex>

namespace dtrain::dist {
namespace {

// A mutex rather than two atomics: a reader gets a count and bytes that belong together. It is
// taken once per collective (per gradient bucket, not per element), so it never contends.
std::mutex& volume_mutex() {
  static std::mutex mutex;
  return mutex;
}

CommunicationVolume& volume() {
  static CommunicationVolume total;
  return total;
}

}  // namespace

CommunicationVolume communication_volume() {
  std::lock_guard<std::mutex> lock(volume_mutex());
  return volume();
}

void record_collective(int64_t payload_bytes) {
  std::lock_guard<std::mutex> lock(volume_mutex());
  CommunicationVolume& total = volume();
  total.collectives += 1;
  total.payload_bytes += payload_bytes;
}

}  // namespace dtrain::dist
