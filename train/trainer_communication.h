#pragma once
// TrainerCommunication: what a DDP Trainer's ranks exchange each step, for networks where the
// exact all-reduce of every gradient is the bottleneck (README, "Slow networks"). Chosen by
// TrainerOptions::communication, a short spec (the examples' --comm):
//   "ddp"          the exact average of the gradients every step (the default)
//   "bf16", "fp16" the gradients all-reduced in half precision (dist/comm_hooks.h)
//   "powersgd:R"   PowerSGD of rank R with error feedback           (dist/compression/)
//   "int8", "1bit" quantized with a scale per chunk, error feedback
//   "topk:F"       the fraction F of largest entries, error feedback
//   "local-sgd:H"  post-local SGD: local steps, parameters averaged every H steps (dist/model_averaging/)
//   "gossip"       D-PSGD: after every local step, an average with the ring neighbours
// start_step: PowerSGD and the quantized/top-k methods all-reduce exactly before it, local SGD
// runs synchronous DDP steps before it (PyTorch's start_powerSGD_iter and post-local SGD's
// start step); gossip starts at once.
//
// What differs between ranks — error-feedback residuals, PowerSGD's Q, and with local SGD and
// gossip the parameters and optimizer state themselves — is this rank's own: checkpoints store it
// in one file per rank beside the checkpoint (rank_state_path), so a resumed run continues
// bitwise. Such a checkpoint resumes at the same world size and with the same method only.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "dist/ddp.h"
#include "layers/module.h"
#include "layers/state_dict.h"
#include "optim/optimizer.h"

namespace dtrain::dist {
class GradientCompression;
class PostLocalSgd;
class GossipAveraging;
}  // namespace dtrain::dist

namespace dtrain::train {

inline constexpr const char* kExactCommunication = "ddp";

// Raises dtrain::Error naming the accepted forms when spec is none of them.
void check_communication_spec(const std::string& spec);

// The file that holds rank's own state for the checkpoint at path: "<path>.rank-<r>-of-<n>.safetensors"
// beside a single file, "<path>/communication.rank-<r>-of-<n>.safetensors" inside a directory.
std::filesystem::path rank_state_path(const std::filesystem::path& checkpoint, int rank, int world_size);

class TrainerCommunication {
 public:
  // Sets ddp's communication hook for the compressing methods.
  TrainerCommunication(const std::string& spec, int64_t start_step, dist::DistributedDataParallel& ddp);
  ~TrainerCommunication();
  TrainerCommunication(const TrainerCommunication&) = delete;
  TrainerCommunication& operator=(const TrainerCommunication&) = delete;

  // Whether the step that follows steps_done steps all-reduces its gradients in backward (DDP);
  // false for local steps (local SGD after its start step, gossip), which run under no_sync.
  bool synchronizes_gradients(int64_t steps_done) const;
  // After the optimizer step that made steps_done steps: local SGD's periodic average, gossip's
  // neighbour average.
  void after_step(int64_t steps_done);

  // Whether this rank has state of its own to checkpoint (anything but the exact and the half
  // precision all-reduce).
  bool has_rank_state() const;
  // Writes this rank's state (and with local SGD and gossip its model and optimizer) for the
  // checkpoint at path; every rank calls it.
  void save_rank_state(const std::filesystem::path& checkpoint, int64_t step, const Module& model,
                       const optim::Optimizer& optimizer) const;
  // Reads it back; raises naming the file when it is missing or was saved by another method,
  // world size or step.
  void load_rank_state(const std::filesystem::path& checkpoint, int64_t step, Module& model,
                       optim::Optimizer& optimizer);

  // "PowerSGD rank 4 with error feedback", "local SGD, parameters averaged every 8 steps".
  std::string description() const;
  const std::string& spec() const { return spec_; }
  // Consensus distance of the parameters across ranks (collective): gossip and local SGD; 0 for
  // the methods that keep every rank's parameters equal.
  double consensus_distance();

 private:
  std::string spec_;
  int64_t start_step_;
  std::shared_ptr<dist::GradientCompression> compression_;
  std::unique_ptr<dist::PostLocalSgd> local_sgd_;
  std::unique_ptr<dist::GossipAveraging> gossip_;
};

}  // namespace dtrain::train
