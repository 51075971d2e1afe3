#pragma once
// Byte accounting and the allocator seam. Every storage's bytes are counted per device and per
// tag, current and peak, so ZeRO's memory claims can be checked against what was really held.
#include <cstddef>
#include <cstdint>

#include "core/device.h"

namespace dtrain {

enum class MemoryTag : uint8_t { Parameters, Gradients, OptimizerState, Activations, Communication, Other };
inline constexpr int kMemoryTagCount = 6;
const char* memory_tag_name(MemoryTag tag);

struct MemoryCounter {
  int64_t current = 0;
  int64_t peak = 0;
};

struct MemoryStats {
  MemoryCounter total;
  MemoryCounter by_tag[kMemoryTagCount];
  const MemoryCounter& operator[](MemoryTag tag) const { return by_tag[static_cast<int>(tag)]; }
};

MemoryStats memory_stats(Device device = Device::cpu());
// Sets every peak to the current value (to measure the peak of one phase).
void reset_peak_memory_stats(Device device = Device::cpu());

// Storages created on this thread while a scope is alive get its tag; the default is Other.
class MemoryTagScope {
 public:
  explicit MemoryTagScope(MemoryTag tag);
  ~MemoryTagScope();
  MemoryTagScope(const MemoryTagScope&) = delete;
  MemoryTagScope& operator=(const MemoryTagScope&) = delete;

 private:
  MemoryTag previous_;
};
MemoryTag current_memory_tag();

// A cap on the bytes tensors may hold on one device (the counted total above, every tag): a
// storage that would take the total past it raises a dtrain::Error naming the request and the
// cap, before any byte is taken, and nothing is counted. It answers "what is the largest model
// that trains in X bytes" on a machine that has more (bench/zero.cpp); bytes already held when
// it is set stay. kNoMemoryLimit, the default, removes it.
//   set_memory_limit(Device::cpu(), int64_t{2} << 30);
inline constexpr int64_t kNoMemoryLimit = INT64_MAX;
void set_memory_limit(Device device, int64_t bytes);
int64_t memory_limit(Device device);

// Raw bytes for one device type. The CPU one is built in; the CUDA backend registers its caching
// allocator when it loads.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes, Device device) = 0;
  virtual void deallocate(void* pointer, size_t nbytes, Device device) = 0;
};

void register_allocator(DeviceType type, Allocator* allocator);
Allocator& allocator_for(Device device);

namespace detail {
// Called by Storage as bytes come and go or change tag.
void count_allocation(Device device, MemoryTag tag, int64_t nbytes);
// As count_allocation, but raises (counting nothing) when the total would pass the memory limit.
void count_allocation_within_limit(Device device, MemoryTag tag, int64_t nbytes);
void count_release(Device device, MemoryTag tag, int64_t nbytes);
}  // namespace detail

}  // namespace dtrain
