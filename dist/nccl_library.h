#pragma once
// The seam between dist and libdtrain_nccl.so, the NCCL backend (dist/nccl/). dist never links
// NCCL or the CUDA runtime: the first group that needs NCCL loads the library (as core loads
// libdtrain_cuda.so, core/cuda_device.h) and asks it, through this interface, for a unique id and
// for backends. A CPU-only program never loads it.
//
// The library is looked for, in order: at $DTRAIN_NCCL_LIBRARY; next to the executable; then by
// the dynamic loader's own search (the program's RUNPATH, core/plugin_library.h). It takes dtrain's core symbols from the
// executable (which exports them in a CUDA build), like libdtrain_cuda.so.
#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "core/device.h"
#include "dist/process_group.h"

namespace dtrain::dist::detail {

// ncclUniqueId's bytes (NCCL_UNIQUE_ID_BYTES; the library checks the size).
struct NcclUniqueId {
  std::array<uint8_t, 128> bytes{};
};

struct NcclBackendOptions {
  int size = 1;           // ranks in the communicator
  int rank = 0;           // this one's place in it
  int device = 0;         // the CUDA device of every tensor this backend sees
  // Test-only (DTRAIN_TEST_INJECT_DELAYS_US): before each all-gather and reduce-scatter, a kernel
  // that spins this long on the compute stream (as if the producer were slow) and on the
  // communication stream (as if the collective were): a missing stream dependency then shows.
  int64_t injected_delay_microseconds = 0;
  // DTRAIN_NCCL_TIMEOUT_SECONDS: a collective still pending this long after it was issued aborts
  // the communicator (dist/collective_watchdog.h), and every later use of the group raises.
  double timeout_seconds = 600;
};

class NcclLibrary {
 public:
  virtual ~NcclLibrary() = default;
  virtual std::string version() = 0;  // "NCCL 2.28.x" (the library's, at run time)
  virtual NcclUniqueId new_unique_id() = 0;
  // Collective over the ranks sharing id: every one calls it with its own rank.
  virtual std::unique_ptr<CommunicationBackend> create_backend(const NcclUniqueId& id, NcclBackendOptions options) = 0;
  // Queues a kernel that spins for microseconds on stream (a cudaStream_t of device): test delays.
  virtual void delay_stream(int device, void* stream, int64_t microseconds) = 0;
};

// Bumped whenever this interface, CommunicationBackend, Work or the Tensor layout change.
inline constexpr int kNcclLibraryAbiVersion = 2;
// The library's entry point: returns the library, or null with *error set (a string that lives
// as long as the library).
using NcclLibraryEntry = NcclLibrary* (*)(int abi_version, const char** error);
inline constexpr const char* kNcclLibraryEntrySymbol = "dtrain_nccl_library";

// Loads the library once per process; raises with the reason when it cannot.
NcclLibrary& nccl_library();
// Whether nccl_library() works; never raises. reason (if given) gets why not.
bool nccl_library_available(std::string* reason = nullptr);

}  // namespace dtrain::dist::detail
