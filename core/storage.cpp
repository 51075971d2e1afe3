#include "core/storage.h"

#include "core/error.h"

namespace dtrain {

Storage::Storage(size_t nbytes, Device device, MemoryTag tag) : nbytes_(nbytes), device_(device), tag_(tag) {
  materialize();
}

Storage::~Storage() {
  if (resident_) release();
}

void* Storage::data() const {
  if (!resident_) {
    fail("storage of ", nbytes_, " bytes on ", device_,
         " was released and not materialised again: its data cannot be read or written");
  }
  return data_;
}

void Storage::set_tag(MemoryTag tag) {
  if (tag == tag_) return;
  if (resident_) {
    detail::count_release(device_, tag_, static_cast<int64_t>(nbytes_));
    detail::count_allocation(device_, tag, static_cast<int64_t>(nbytes_));
  }
  tag_ = tag;
}

void Storage::release() {
  if (!resident_) return;
  if (data_ != nullptr) allocator_for(device_).deallocate(data_, nbytes_, device_);
  detail::count_release(device_, tag_, static_cast<int64_t>(nbytes_));
  data_ = nullptr;
  resident_ = false;
}

void Storage::materialize() {
  if (resident_) return;
  // Counted first: past a memory limit (core/allocator.h) this raises before any byte is taken.
  detail::count_allocation_within_limit(device_, tag_, static_cast<int64_t>(nbytes_));
  try {
    data_ = nbytes_ == 0 ? nullptr : allocator_for(device_).allocate(nbytes_, device_);
  } catch (...) {
    detail::count_release(device_, tag_, static_cast<int64_t>(nbytes_));
    throw;
  }
  resident_ = true;
}

}  // namespace dtrain
