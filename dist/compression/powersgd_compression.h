#pragma once
// PowerSgdCompression: PowerSGD (Vogels, Karimireddy and Jaggi, 2019) as PyTorch's powerSGD_hook
// (torch/distributed/algorithms/ddp_comm_hooks/powerSGD_hook.py). For each bucket, once
// steps() >= start_step:
//
//   1. compensate: M += residual (error feedback), for the whole flat bucket;
//   2. every parameter of 2 or more dimensions is viewed as a matrix M (n = its first size, m =
//      the rest) of rank r = min(n, m, options.rank); it is compressed when that saves bytes,
//      (n + m) r * min_compression_rate < n m (PyTorch's rule), else sent whole like the
//      1-d tensors (biases, norms);
//   3. Q (m x r): random N(0, 1) from a generator seeded identically on every rank the first time
//      (every step without warm_start), else last step's averaged Q (warm start); orthogonalized;
//   4. P = M Q for every compressed matrix; the P's and the uncompressed tensors packed into one
//      flat tensor, all-reduced (sum) — collective 1;
//   5. on wait: uncompressed tensors divided by the group size; each P orthogonalized
//      (Gram-Schmidt); Q = M^T P (this rank's); residual = M - P Q^T (what this rank's
//      contribution P Q^T left out; the uncompressed tensors leave none); the Q's, packed, are
//      all-reduced (sum) — collective 2 — and divided by the group size; M = P Q^T.
//
// So a bucket costs at most 2 collectives, whatever its number of matrices (PyTorch's issues 3:
// it sends the uncompressed tensors on their own). The second all-reduce is issued from the
// Work's wait (then_on_wait): DDP waits for its buckets in launch order on every rank and never
// polls them, so the collectives keep the same order on every rank.
//
// One difference from PyTorch, on purpose: PyTorch's residual is M minus the averaged result,
// which for every rank keeps its deviation from the average as "error" (a random walk that never
// shrinks, in the uncompressed tensors too). Here it is M minus this rank's own contribution
// P Q_rank^T, as in the paper's algorithm. The averaged results are the same in exact arithmetic:
// every step's P and Q sums depend on the residuals only through their sum over ranks, which is
// the same in both.
//
// With r = min(n, m) nothing is lost: P's columns span M's column space (Q is square and
// invertible when r = m; P Q^T = P P^T M is the projection onto it), so the result is the exact
// average to within the rounding of the orthogonalization (Gram-Schmidt loses orthogonality in
// proportion to the condition number of P).
//
// A bucket whose all-reduced P or uncompressed part holds an infinite or NaN value (an fp16 loss
// scale that overflowed on some rank) comes out NaN in its compressed matrices on every rank, so
// a loss scaler skips the step; the residuals and Q's are then left as they were.
//
// The matrix products run as tensor ops on the bucket's device; the orthogonalization of the
// small P and Q matrices runs on the host (float64 buckets in float64, others in float32).
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/random.h"
#include "dist/compression/error_feedback.h"
#include "dist/compression/gradient_compression.h"

namespace dtrain::dist {

struct PowerSgdOptions {
  int64_t rank = 1;                        // the approximation's rank (PyTorch's matrix_approximation_rank)
  int64_t start_step = 0;                  // exact all-reduce before this step (start_powerSGD_iter)
  bool warm_start = true;                  // reuse last step's Q
  double min_compression_rate = 2.0;       // compress a matrix only if it shrinks by more than this
  double orthogonalization_epsilon = 0.0;  // each column is divided by (its norm + epsilon); a zero column stays zero
  uint64_t seed = 0;                       // of the generator of the initial Q's (the same on every rank)
};

class PowerSgdCompression : public GradientCompression {
 public:
  explicit PowerSgdCompression(PowerSgdOptions options = {});

  // "powersgd rank 4"
  std::string name() const override;
  // "steps", "generator.seed", "generator.offset", "residual.<bucket>", "q.<bucket>".
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& state) override;

  const PowerSgdOptions& options() const { return options_; }
  // For tests: how many of a bucket's tensors are compressed (known after its first compressed step).
  size_t compressed_matrix_count(size_t bucket_index) const;

 protected:
  WorkHandle compress(ProcessGroup& group, HookBucket& bucket) override;

 private:
  struct Matrix {
    size_t member;  // position in HookBucket::gradients
    int64_t rows;
    int64_t columns;
    int64_t rank;
    int64_t buffer_offset;  // in the bucket's buffer
    int64_t p_offset;  // in the packed P's (the start of the all-reduced tensor)
    int64_t q_offset;  // in the packed Q's
  };
  struct Uncompressed {
    size_t member;
    int64_t offset;  // in the all-reduced tensor, after the P's
  };
  struct BucketPlan {
    std::vector<Shape> shapes;  // every member's, to notice a bucket that changed
    std::vector<Matrix> matrices;
    std::vector<Uncompressed> uncompressed;
    int64_t p_elements = 0;
    int64_t uncompressed_elements = 0;
    int64_t q_elements = 0;
  };

  const BucketPlan& plan_for(const HookBucket& bucket);
  void finish(ProcessGroup& group, HookBucket bucket, Tensor packed);

  PowerSgdOptions options_;
  Generator generator_;
  std::map<size_t, BucketPlan> plans_;
  std::map<size_t, Tensor> q_memory_;  // by bucket: the packed Q's (warm start)
};

}  // namespace dtrain::dist
