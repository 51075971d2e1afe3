#pragma once
// What the compression tests share: synthetic gradient buckets whose every rank's values any rank
// can compute (so each rank knows the exact average), and running one hook on one bucket.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/core.h"
#include "dist/comm_hooks.h"
#include "dist/compression/compression.h"
#include "dist/init.h"

namespace dtrain::dist::testing {

// A bucket of the given parameter shapes: a flat buffer and one view per shape, back to back.
inline HookBucket make_bucket(const std::vector<Shape>& shapes, DType dtype, size_t index = 0, bool is_last = true) {
  int64_t total = 0;
  for (const Shape& shape : shapes) total += shape.numel();
  HookBucket bucket{.index = index, .buffer = zeros({total}, {.dtype = dtype}), .gradients = {}, .is_last = is_last};
  int64_t offset = 0;
  for (const Shape& shape : shapes) {
    bucket.gradients.push_back(bucket.buffer.narrow(0, offset, shape.numel()).view(shape));
    offset += shape.numel();
  }
  return bucket;
}

// The flat gradient rank `rank` holds at `step`: N(0, 1) values from a generator of its own.
inline Tensor rank_gradient(int64_t elements, DType dtype, int rank, int64_t step) {
  Generator generator(7000 + 100 * static_cast<uint64_t>(step) + static_cast<uint64_t>(rank));
  return randn({elements}, {.dtype = dtype}, &generator);
}

// Runs hook on bucket (filled with values first) and waits: the bucket's buffer holds the result.
inline void reduce_bucket(const CommunicationHook& hook, HookBucket& bucket, const Tensor& values) {
  bucket.buffer.copy_(values);
  hook(world(), bucket)->wait();
}

// The mean over every rank of rank_gradient, summed in double.
inline std::vector<double> exact_mean(int64_t elements, DType dtype, int64_t step) {
  std::vector<double> mean(static_cast<size_t>(elements), 0.0);
  for (int rank = 0; rank < world().size(); ++rank) {
    std::vector<double> values = rank_gradient(elements, dtype, rank, step).to_vector<double>();
    for (size_t i = 0; i < mean.size(); ++i) mean[i] += values[i];
  }
  for (double& value : mean) value /= world().size();
  return mean;
}

}  // namespace dtrain::dist::testing
