#pragma once
// The profiler's recording hooks: what the op layer, autograd's engine, dist and the CUDA plugin
// call (the public side is core/profiler.h). While no profile records, every hook is one relaxed
// load of a flag and a branch that is never taken, so a program pays nothing for them.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <vector>

#include "core/device.h"
#include "core/profiler_event.h"

namespace dtrain {
class Tensor;
}

namespace dtrain::profiler::detail {

// True while at least one profile records (core/profiler.h's Profile, or DTRAIN_PROFILE).
extern std::atomic<bool> g_recording;
inline bool recording() { return g_recording.load(std::memory_order_relaxed); }

// An event open on this thread from construction to destruction (nothing at all when off). The
// device is the first defined input's, unless given.
//
// Kernel-table calls (core/profiler_backend.cpp) are op events of their own, except inside an op
// that owns them: an op that names itself (layer_norm, contiguous) owns the one kernel it calls
// for its work, and a kernel call owns whatever its kernel calls in turn, so each op counts once.
class Scope {
 public:
  Scope() = default;  // records nothing
  // owned_kernel: the kernel-table entry this op's work is ("layer_norm"; "copy" for contiguous).
  Scope(EventKind kind, const char* name, std::initializer_list<const Tensor*> inputs,
        const char* owned_kernel = nullptr) {
    if (recording()) [[unlikely]] open(kind, name, inputs.begin(), inputs.size(), owned_kernel, false);
  }
  Scope(EventKind kind, std::string_view name, const std::vector<Tensor>& inputs, Device device) {
    if (recording()) [[unlikely]] open(kind, name, inputs, device);
  }
  // A kernel-table call named name.
  struct KernelCall {};
  Scope(KernelCall, const char* name, std::initializer_list<const Tensor*> inputs) {
    if (recording()) [[unlikely]] open(EventKind::Op, name, inputs.begin(), inputs.size(), nullptr, true);
  }
  ~Scope() {
    if (index_ >= 0) [[unlikely]] close();
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

  bool active() const { return index_ >= 0; }
  // Collectives: the bytes the event moves.
  void set_bytes(int64_t bytes);
  // Drops the event (a kernel that declined the case and did nothing).
  void cancel();

 private:
  void open(EventKind kind, std::string_view name, const Tensor* const* inputs, size_t count, const char* owned_kernel,
            bool kernel);
  void open(EventKind kind, std::string_view name, const std::vector<Tensor>& inputs, Device device);
  void close();
  friend class ContiguousCopyScope;

  int64_t index_ = -1;        // in this thread's log; -1: not recording
  uint64_t generation_ = 0;   // of the log when opened (a log cleared since is not written)
};

// contiguous() copying x: counts the copy against the innermost open event (the op that asked
// for it), then opens a "contiguous" op around the copy.
class ContiguousCopyScope {
 public:
  explicit ContiguousCopyScope(const Tensor& x) {
    if (recording()) [[unlikely]] open(x);
  }

 private:
  void open(const Tensor& x);
  Scope scope_;
};

// The CUDA plugin reports each time the host waits for the device (a copy to the host, a stream
// or device synchronisation); counted against the innermost open event.
void note_host_synchronization(const char* what);
inline void host_synchronization(const char* what) {
  if (recording()) [[unlikely]] note_host_synchronization(what);
}

}  // namespace dtrain::profiler::detail
