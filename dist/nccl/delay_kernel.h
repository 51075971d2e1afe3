#pragma once
// Test-only delays (DTRAIN_TEST_INJECT_DELAYS_US): a one-thread kernel that keeps a stream busy
// for a while, so that work on another stream that does not wait for it properly runs too early
// and changes results.
#include <cuda_runtime.h>

#include <cstdint>

namespace dtrain::dist::nccl {

// Queues the spin on stream (of the current device); checks the launch.
void spin_on_stream(cudaStream_t stream, int64_t microseconds);

}  // namespace dtrain::dist::nccl
