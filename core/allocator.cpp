#include "core/allocator.h"

#include <array>
#include <atomic>
#include <mutex>

#include "core/cpu_allocator.h"
#include "core/cuda_device.h"
#include "core/error.h"

namespace dtrain {

const char* memory_tag_name(MemoryTag tag) {
  switch (tag) {
    case MemoryTag::Parameters: return "parameters";
    case MemoryTag::Gradients: return "gradients";
    case MemoryTag::OptimizerState: return "optimizer_state";
    case MemoryTag::Activations: return "activations";
    case MemoryTag::Communication: return "communication";
    case MemoryTag::Other: return "other";
  }
  return "unknown";
}

namespace {

constexpr int kMaxDeviceIndex = 16;

// One ledger per (device type, index); a mutex keeps current and peak consistent together.
struct Ledger {
  std::mutex mutex;
  MemoryStats stats;
  int64_t limit = kNoMemoryLimit;
};

Ledger& ledger_for(Device device) {
  static std::array<std::array<Ledger, kMaxDeviceIndex>, kDeviceTypeCount> ledgers;
  if (device.index < 0 || device.index >= kMaxDeviceIndex) {
    fail("memory accounting: device index ", device.index, " of ", device, " is out of range (expected 0 to ",
         kMaxDeviceIndex - 1, ")");
  }
  return ledgers[static_cast<int>(device.type)][device.index];
}

void add(MemoryCounter& counter, int64_t delta) {
  counter.current += delta;
  if (counter.current > counter.peak) counter.peak = counter.current;
}

thread_local MemoryTag current_tag = MemoryTag::Other;

std::array<Allocator*, kDeviceTypeCount>& allocators() {
  static std::array<Allocator*, kDeviceTypeCount> table{&cpu_allocator(), nullptr};
  return table;
}

}  // namespace

MemoryStats memory_stats(Device device) {
  Ledger& ledger = ledger_for(device);
  std::lock_guard<std::mutex> lock(ledger.mutex);
  return ledger.stats;
}

void reset_peak_memory_stats(Device device) {
  Ledger& ledger = ledger_for(device);
  std::lock_guard<std::mutex> lock(ledger.mutex);
  ledger.stats.total.peak = ledger.stats.total.current;
  for (auto& counter : ledger.stats.by_tag) counter.peak = counter.current;
}

void set_memory_limit(Device device, int64_t bytes) {
  if (bytes < 0) fail("set_memory_limit: expected a limit >= 0 bytes for ", device, ", got ", bytes);
  Ledger& ledger = ledger_for(device);
  std::lock_guard<std::mutex> lock(ledger.mutex);
  ledger.limit = bytes;
}

int64_t memory_limit(Device device) {
  Ledger& ledger = ledger_for(device);
  std::lock_guard<std::mutex> lock(ledger.mutex);
  return ledger.limit;
}

MemoryTagScope::MemoryTagScope(MemoryTag tag) : previous_(current_tag) { current_tag = tag; }
MemoryTagScope::~MemoryTagScope() { current_tag = previous_; }
MemoryTag current_memory_tag() { return current_tag; }

void register_allocator(DeviceType type, Allocator* allocator) { allocators()[static_cast<int>(type)] = allocator; }

Allocator& allocator_for(Device device) {
  Allocator* allocator = allocators()[static_cast<int>(device.type)];
  if (allocator == nullptr && device.is_cuda()) {
    cuda::detail::runtime();  // loads the CUDA backend, which registers its allocator; raises saying why not
    allocator = allocators()[static_cast<int>(device.type)];
  }
  if (allocator == nullptr) {
    fail("no allocator for device ", device, ": this build has no backend for it (configure with DTRAIN_CUDA=ON)");
  }
  return *allocator;
}

namespace detail {
void count_allocation(Device device, MemoryTag tag, int64_t nbytes) {
  Ledger& ledger = ledger_for(device);
  std::lock_guard<std::mutex> lock(ledger.mutex);
  add(ledger.stats.total, nbytes);
  add(ledger.stats.by_tag[static_cast<int>(tag)], nbytes);
}
void count_allocation_within_limit(Device device, MemoryTag tag, int64_t nbytes) {
  Ledger& ledger = ledger_for(device);
  std::lock_guard<std::mutex> lock(ledger.mutex);
  const int64_t held = ledger.stats.total.current;
  if (nbytes > ledger.limit - held) {
    fail("memory limit on ", device, ": a tensor of ", nbytes, " bytes (", memory_tag_name(tag),
         ") does not fit: tensors hold ", held, " bytes and the limit set by set_memory_limit is ", ledger.limit,
         " bytes (", ledger.limit - held, " free)");
  }
  add(ledger.stats.total, nbytes);
  add(ledger.stats.by_tag[static_cast<int>(tag)], nbytes);
}
void count_release(Device device, MemoryTag tag, int64_t nbytes) {
  Ledger& ledger = ledger_for(device);
  std::lock_guard<std::mutex> lock(ledger.mutex);
  ledger.stats.total.current -= nbytes;
  ledger.stats.by_tag[static_cast<int>(tag)].current -= nbytes;
}
}  // namespace detail

}  // namespace dtrain
