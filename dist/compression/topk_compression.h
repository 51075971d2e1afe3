#pragma once
// TopKCompression: top-k sparsification with error feedback (Stich et al. 2018; Lin et al.'s
// Deep Gradient Compression). Each rank keeps, per bucket, the k = ceil(fraction * n) values of
// largest magnitude of its compensated gradient (ties to the lower index; NaN counts as the
// largest, so a loss scaler still sees it) and sends them as (index, value) pairs: two
// all-gathers per bucket, the indices in Int32 (Int64 for buckets of 2^31 elements or more) and
// the values in the working dtype. Every rank scatter-adds every rank's pairs in rank order (the
// same sum on every rank, bitwise) and divides by the group size. The residual is the dropped
// values (the kept ones leave zero): sent + residual == compensated bitwise.
//
// With k = n nothing is dropped: the result is the all-reduce's average (bitwise whenever the
// sums are exact; otherwise the rank-order sum may round differently from MPI's).
//
// Bytes per rank: k (index + value) against n values: fraction 1% of a float32 bucket sends 2%
// of its bytes (but an all-gather delivers N - 1 such parts to every rank).
//
// The work is CPU loops on the data: a CUDA bucket is copied to the host and the result back.
// Gradients in float64 are processed in float64, every other dtype in float32.
#include <cstddef>
#include <cstdint>
#include <string>

#include "dist/compression/error_feedback.h"
#include "dist/compression/gradient_compression.h"

namespace dtrain::dist {

struct TopKOptions {
  double fraction = 0.01;  // of each bucket's values kept, 0 < fraction <= 1
  int64_t start_step = 0;  // exact all-reduce before this step
};

class TopKCompression : public GradientCompression {
 public:
  explicit TopKCompression(TopKOptions options = {});

  // "top-1%"
  std::string name() const override;

  const TopKOptions& options() const { return options_; }
  // How many values a bucket of `elements` keeps.
  int64_t kept_count(int64_t elements) const;

 protected:
  WorkHandle compress(ProcessGroup& group, HookBucket& bucket) override;

 private:
  TopKOptions options_;
};

}  // namespace dtrain::dist
