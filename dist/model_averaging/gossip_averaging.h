#pragma once
// GossipAveraging: decentralised parallel SGD (D-PSGD, Lian et al., 2017) on a ring. After each
// local step every rank replaces its parameters by a weighted average of its own and its ring
// neighbours' (ranks r - 1 and r + 1 mod N):
//
//   x_r <- w x_r + (1 - w)/2 x_{r-1} + (1 - w)/2 x_{r+1}      (N >= 3; N = 2: w x_r + (1 - w) x_other)
//
// — no global all-reduce: each rank talks to two others, whatever N. The mixing matrix W is
// symmetric with rows summing to 1, hence doubly stochastic: the average of the parameters over
// the ranks is preserved by every average(), and the ranks' deviations from it shrink by the
// factor max over k != 0 of |w + (1 - w) cos(2 pi k / N)| (W's second-largest eigenvalue modulus)
// per average() when nothing else moves them. consensus_distance() measures that deviation.
//
// Each average() is one send_receive per flat bucket of parameters (sends of this rank's bucket
// to both neighbours, receives of theirs), all in flight together. Point-to-point carries CPU
// tensors only (dist/point_to_point.h): average() raises, naming that, for CUDA parameters.
#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "dist/model_averaging/parameter_buckets.h"
#include "dist/process_group.h"

namespace dtrain::dist {

struct GossipOptions {
  // w: the weight of a rank's own parameters, in [0, 1]; the rest is split evenly between the
  // distinct ring neighbours (a 2-rank ring has one). Consensus needs 0 < w < 1 (w = 0 on an
  // even ring only swaps values around).
  double self_weight = 0.5;
  // Parameters travel in flat buckets of about this many MiB (one send_receive each).
  double bucket_cap_mb = 25.0;
};

class GossipAveraging {
 public:
  // parameters: the model's, the same shapes in the same order on every rank. group: the ring's
  // ranks in ring order (the world when null). Raises when self_weight is outside [0, 1].
  GossipAveraging(std::vector<Tensor> parameters, std::shared_ptr<ProcessGroup> group, GossipOptions options = {});

  const GossipOptions& options() const { return options_; }
  // The distinct ring neighbours of this rank (group ranks: left first), and each one's weight.
  const std::vector<int>& neighbours() const { return neighbours_; }
  double neighbour_weight() const { return neighbour_weight_; }

  // After each local step: x_r <- w x_r + sum over neighbours of their weight times their x.
  // Collective: every rank of the group calls it.
  void average();

  // Collective: sqrt(mean over ranks of ||x_r - mean over ranks of x||^2), the norm over every
  // parameter element, computed in float64; the same value on every rank.
  double consensus_distance();

 private:
  std::shared_ptr<ProcessGroup> group_;
  GossipOptions options_;
  ParameterBuckets buckets_;
  std::vector<int> neighbours_;
  double neighbour_weight_ = 0.0;
  // received_[bucket][neighbour]: where the neighbours' buckets land.
  std::vector<std::vector<Tensor>> received_;
};

}  // namespace dtrain::dist
