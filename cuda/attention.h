#pragma once
// What cuda/attention.cpp (CudaBackend::attention and attention_backward, cuDNN's fused flash
// attention) tells besides its kernel-table entries.
//
//   if (!backend_for(gpu).attention(q, k, v, scale, out, lse)) {
//     std::cerr << "plain path: " << dtrain::cuda::last_attention_decline_reason() << "\n";
//   }
#include <string>

#include "cuda/export.h"

namespace dtrain::cuda {

// Why the last attention or attention_backward call on this thread took no fused kernel: it
// returned false, or (a backward whose forward ran) raised. Empty after a call that ran.
DTRAIN_CUDA_EXPORT std::string last_attention_decline_reason();

}  // namespace dtrain::cuda
