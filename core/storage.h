#pragma once
// Storage: the bytes under one or more tensors. Tensors hold it through a shared pointer, so a
// view, a tensor saved for backward and the original all see the same bytes. The bytes can be
// released and materialised again in place (ZeRO-3 frees a gathered parameter after a module's
// forward and re-gathers it before that module's backward), and the storage keeps the version
// counter that in-place ops bump so autograd can refuse a modified saved tensor.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/allocator.h"
#include "core/device.h"

namespace dtrain {

class Storage {
 public:
  Storage(size_t nbytes, Device device, MemoryTag tag);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  // Raises if the bytes are released: reading freed parameter memory is a bug to name, not a crash.
  void* data() const;
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  MemoryTag tag() const { return tag_; }
  // Moves the counted bytes to another tag (a gradient produced by backward becomes Gradients).
  void set_tag(MemoryTag tag);

  bool is_resident() const { return resident_; }
  void release();      // frees the bytes; shape and size are kept
  void materialize();  // allocates them again (contents undefined until written)

  uint32_t version() const { return version_.load(std::memory_order_relaxed); }
  void bump_version() { version_.fetch_add(1, std::memory_order_relaxed); }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  MemoryTag tag_;
  bool resident_ = false;
  std::atomic<uint32_t> version_{0};
};

using StoragePtr = std::shared_ptr<Storage>;

}  // namespace dtrain
