#include "train/trainer_communication.h"

#include <cstdlib>
#include <exception>
#include <map>
#include <utility>

#include "core/error.h"
#include "core/safetensors.h"
#include "dist/comm_hooks.h"
#include "dist/compression/compression.h"
#include "dist/init.h"
#include "dist/model_averaging/model_averaging.h"
#include "train/checkpoint_names.h"

namespace dtrain::train {

namespace {

constexpr const char* kAcceptedForms =
    "ddp, bf16, fp16, powersgd:<rank>, int8, 1bit, topk:<fraction kept>, local-sgd:<period>, gossip";
constexpr const char* kCommunicationPrefix = "communication.";
constexpr const char* kLocalSgdPrefix = "local-sgd:";

bool is_half_precision_all_reduce(const std::string& spec) { return spec == "bf16" || spec == "fp16"; }

// The period of "local-sgd:<period>", or 0 when spec is not of that form.
int64_t local_sgd_period(const std::string& spec) {
  if (!has_prefix(spec, kLocalSgdPrefix)) return 0;
  const std::string digits = spec.substr(std::string(kLocalSgdPrefix).size());
  char* end = nullptr;
  const long long period = digits.empty() ? 0 : std::strtoll(digits.c_str(), &end, 10);
  if (digits.empty() || *end != '\0' || period < 1) {
    fail("communication '", spec, "': expected local-sgd:<period> with a period of at least 1 step, like local-sgd:8");
  }
  return period;
}

std::string rank_text(int rank, int world_size) {
  return "rank-" + std::to_string(rank) + "-of-" + std::to_string(world_size);
}

}  // namespace

void check_communication_spec(const std::string& spec) {
  if (spec == kExactCommunication || is_half_precision_all_reduce(spec) || spec == "gossip") return;
  if (local_sgd_period(spec) > 0) return;
  try {
    dist::make_gradient_compression(spec);
  } catch (const std::exception& error) {
    fail("communication '", spec, "': expected one of ", kAcceptedForms, " (", error.what(), ")");
  }
}

std::filesystem::path rank_state_path(const std::filesystem::path& checkpoint, int rank, int world_size) {
  if (std::filesystem::is_directory(checkpoint)) {
    return checkpoint / ("communication." + rank_text(rank, world_size) + ".safetensors");
  }
  return checkpoint.string() + "." + rank_text(rank, world_size) + ".safetensors";
}

TrainerCommunication::TrainerCommunication(const std::string& spec, int64_t start_step,
                                           dist::DistributedDataParallel& ddp)
    : spec_(spec), start_step_(start_step) {
  check_communication_spec(spec);
  if (start_step < 0) fail("communication_start_step must be >= 0, got ", start_step);
  if (spec == "bf16") {
    ddp.register_comm_hook(dist::bf16_compress_hook);
  } else if (spec == "fp16") {
    ddp.register_comm_hook(dist::fp16_compress_hook);
  } else if (const int64_t period = local_sgd_period(spec); period > 0) {
    local_sgd_ = std::make_unique<dist::PostLocalSgd>(
        ddp.parameters(), dist::world_ptr(), dist::PostLocalSgdOptions{.start_step = start_step, .period = period});
  } else if (spec == "gossip") {
    gossip_ = std::make_unique<dist::GossipAveraging>(ddp.parameters(), dist::world_ptr());
  } else if (spec != kExactCommunication) {
    compression_ = dist::make_gradient_compression(spec, start_step);
    ddp.register_comm_hook(dist::as_hook(compression_));
  }
}

TrainerCommunication::~TrainerCommunication() = default;

bool TrainerCommunication::synchronizes_gradients(int64_t steps_done) const {
  if (local_sgd_) return local_sgd_->synchronizes_gradients(steps_done);
  return !gossip_;
}

void TrainerCommunication::after_step(int64_t steps_done) {
  if (local_sgd_) local_sgd_->after_step(steps_done);
  if (gossip_) gossip_->average();
}

bool TrainerCommunication::has_rank_state() const { return compression_ || local_sgd_ || gossip_; }

void TrainerCommunication::save_rank_state(const std::filesystem::path& checkpoint, int64_t step, const Module& model,
                                           const optim::Optimizer& optimizer) const {
  if (!has_rank_state()) return;
  const int rank = dist::rank();
  const int world_size = dist::world_size();
  std::map<std::string, Tensor> tensors;
  if (compression_) {
    for (const auto& [name, tensor] : compression_->state_dict()) tensors[kCommunicationPrefix + name] = tensor;
  }
  if (local_sgd_ || gossip_) {
    // Between averages every rank holds parameters and optimizer state of its own.
    for (const auto& [name, parameter] : model.named_parameters()) tensors[model_key(name)] = parameter;
    const auto names = optimizer_parameter_names(model, optimizer, "saving this rank's state");
    for (auto& [key, tensor] : named_optimizer_state(optimizer.state_dict(), names)) tensors[key] = tensor;
  }
  save_safetensors(rank_state_path(checkpoint, rank, world_size), tensors,
                   {{"dtrain.communication", spec_},
                    {"dtrain.rank", std::to_string(rank)},
                    {"dtrain.world_size", std::to_string(world_size)},
                    {"dtrain.step", std::to_string(step)}});
}

void TrainerCommunication::load_rank_state(const std::filesystem::path& checkpoint, int64_t step, Module& model,
                                           optim::Optimizer& optimizer) {
  if (!has_rank_state()) return;
  const int rank = dist::rank();
  const int world_size = dist::world_size();
  const std::filesystem::path path = rank_state_path(checkpoint, rank, world_size);
  if (!std::filesystem::exists(path)) {
    fail("resuming ", checkpoint.string(), " with communication '", spec_, "' at ", world_size,
         " ranks: expected this rank's own state in ", path.string(),
         " (a run with that method saves one per rank), found none; resume with the method and world size that saved "
         "it, or start from its weights alone with init_from");
  }
  SafetensorsFile file = load_safetensors(path);
  auto metadata = [&](const std::string& key) {
    auto found = file.metadata.find(key);
    return found == file.metadata.end() ? std::string("(none)") : found->second;
  };
  const std::map<std::string, std::string> expected{{"dtrain.communication", spec_},
                                                    {"dtrain.rank", std::to_string(rank)},
                                                    {"dtrain.world_size", std::to_string(world_size)},
                                                    {"dtrain.step", std::to_string(step)}};
  for (const auto& [key, value] : expected) {
    if (metadata(key) != value) {
      fail(path.string(), ": expected ", key, " ", value, " (this run's), got ", metadata(key));
    }
  }
  if (compression_) {
    StateDict state;
    for (const auto& [key, tensor] : file.tensors) {
      if (has_prefix(key, kCommunicationPrefix)) state.insert(key.substr(std::string(kCommunicationPrefix).size()), tensor);
    }
    compression_->load_state_dict(state);
  }
  if (local_sgd_ || gossip_) {
    StateDict weights;
    for (const auto& [key, tensor] : file.tensors) {
      if (has_prefix(key, kModelPrefix)) weights.insert(key.substr(std::string(kModelPrefix).size()), tensor);
    }
    model.load_state_dict(weights);
    optim::StateDictProblems problems;
    const auto names = optimizer_parameter_names(model, optimizer, "loading this rank's state");
    optim::StateDict by_index = indexed_optimizer_state(file.tensors, names, problems);
    problems.raise_if_any(path.string());
    optimizer.load_state_dict(by_index);
  }
}

std::string TrainerCommunication::description() const {
  if (compression_) return compression_->name() + " with error feedback";
  if (local_sgd_) {
    return "local SGD, parameters averaged every " + spec_.substr(std::string(kLocalSgdPrefix).size()) +
           " steps from step " + std::to_string(start_step_);
  }
  if (gossip_) return "gossip averaging with the ring neighbours (D-PSGD)";
  if (is_half_precision_all_reduce(spec_)) return spec_ + " all-reduce";
  return "exact all-reduce";
}

double TrainerCommunication::consensus_distance() {
  if (!gossip_) fail("consensus_distance: only gossip averaging reports one, the communication is '", spec_, "'");
  return gossip_->consensus_distance();
}

}  // namespace dtrain::train
