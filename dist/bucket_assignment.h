#pragma once
// Which parameters share a gradient bucket. Computed from sizes and dtypes alone, in the same
// order on every rank, so every rank cuts the model into the same buckets and launches their
// all-reduces in the same order (a mismatch would pair unrelated buffers and hang or corrupt).
#include <cstddef>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"

namespace dtrain::dist {

// What the assignment needs to know of one parameter.
struct BucketableTensor {
  size_t nbytes = 0;
  DType dtype = kFloat32;
  Device device = Device::cpu();
};

// Groups parameters (given in registration order) into buckets as PyTorch's
// compute_bucket_assignment_by_size does: parameters are taken in reverse registration order
// (the last layers' gradients are ready first in backward), a bucket holds one dtype and device,
// and a bucket is closed once it reaches its cap — first_bucket_cap_bytes for the first bucket
// of each dtype/device (small, so the first all-reduce starts early in backward), then
// bucket_cap_bytes. A cap of 0 puts every parameter in a bucket of its own.
//
// Returns the buckets in launch order, each listing parameter indices (into `parameters`) in
// the order they are laid out in the bucket's flat buffer.
std::vector<std::vector<size_t>> assign_gradient_buckets(const std::vector<BucketableTensor>& parameters,
                                                         size_t first_bucket_cap_bytes, size_t bucket_cap_bytes);

// A size option given in MB (DDP's and ZeRO's bucket caps, ZeRO's prefetch) in bytes; raises,
// naming who and the option, for a negative or non-finite value.
size_t megabytes_to_bytes(double megabytes, const char* who, const char* option);

}  // namespace dtrain::dist
