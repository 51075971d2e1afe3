#pragma once
// What the sharded-checkpoint tests share: a scratch directory that every rank of a job sees,
// groups of the first n ranks (to save at one world size and load at another inside one job),
// tensors whose every element is known, a small MLP trained with AdamW, and byte comparisons.
#include <unistd.h>
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <numeric>
#include <string>
#include <system_error>
#include <vector>

#include "core/core.h"
#include "dist/checkpoint/checkpoint.h"
#include "dist/init.h"
#include "dist/process_group.h"
#include "layers/layers.h"
#include "optim/adamw.h"

namespace dtrain::dist::testing {

// A fresh directory under the system's temporary folder with the same path on every rank of
// group (rank 0 names it after its process id), removed when the object goes out of scope.
// The ranks construct and destroy them in the same order (SPMD), with a barrier at both ends.
class SharedDirectory {
 public:
  explicit SharedDirectory(ProcessGroup& group = world()) : group_(group) {
    static int counter = 0;
    const int64_t owner = all_gather_int64(&group_, ::getpid())[0];
    path_ = std::filesystem::temp_directory_path() /
            ("dtrain-sharded-" + std::to_string(owner) + "-" + std::to_string(counter++));
    if (group_.rank() == 0) {
      std::filesystem::remove_all(path_);
      std::filesystem::create_directories(path_);
    }
    group_.barrier()->wait();
  }
  ~SharedDirectory() {
    try {
      group_.barrier()->wait();
    } catch (...) {
    }
    std::error_code ignored;
    if (group_.rank() == 0) std::filesystem::remove_all(path_, ignored);
  }
  SharedDirectory(const SharedDirectory&) = delete;
  SharedDirectory& operator=(const SharedDirectory&) = delete;

  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
  const std::filesystem::path& path() const { return path_; }

 private:
  ProcessGroup& group_;
  std::filesystem::path path_;
};

// Groups of the world's first n ranks, n = 1 .. world size (null on the ranks outside).
inline std::vector<std::shared_ptr<ProcessGroup>> first_ranks_groups() {
  std::vector<std::shared_ptr<ProcessGroup>> groups(1);  // index n: the first n ranks; [0] unused
  for (int n = 1; n <= world().size(); ++n) {
    std::vector<int> ranks(static_cast<size_t>(n));
    std::iota(ranks.begin(), ranks.end(), 0);
    groups.push_back(world().new_subgroup(ranks));
  }
  return groups;
}

// Whether two tensors have the same shape, dtype and bytes.
inline bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  Tensor x = a.contiguous();
  Tensor y = b.contiguous();
  return x.nbytes() == 0 || std::memcmp(x.data(), y.data(), x.nbytes()) == 0;
}

// Bytes of every tensor, to check that a failed load changed nothing.
inline std::vector<Tensor> snapshot(const Module& model) {
  std::vector<Tensor> copies;
  for (const auto& [name, tensor] : model.state_dict()) copies.push_back(tensor.clone());
  return copies;
}
inline bool unchanged(const Module& model, const std::vector<Tensor>& before) {
  size_t i = 0;
  for (const auto& [name, tensor] : model.state_dict()) {
    if (i >= before.size() || !same_bytes(tensor, before[i++])) return false;
  }
  return i == before.size();
}

// --- a small MLP trained with AdamW, two param groups (weights decay, biases do not) ----------
inline std::shared_ptr<Module> make_mlp(uint64_t seed, int64_t hidden = 10, bool extra_layer = false) {
  manual_seed(seed);
  std::vector<std::shared_ptr<Module>> layers{std::make_shared<Linear>(6, hidden), std::make_shared<ReLU>(),
                                              std::make_shared<Linear>(hidden, 10), std::make_shared<ReLU>(),
                                              std::make_shared<Linear>(10, 4)};
  if (extra_layer) {
    layers.push_back(std::make_shared<ReLU>());
    layers.push_back(std::make_shared<Linear>(4, 4));
  }
  return std::make_shared<Sequential>(layers);
}

inline std::unique_ptr<optim::AdamW> make_adamw(const Module& model) {
  std::vector<Tensor> decay, no_decay;
  for (const auto& [name, parameter] : model.named_parameters()) {
    (name.find("bias") != std::string::npos ? no_decay : decay).push_back(parameter);
  }
  return std::make_unique<optim::AdamW>(std::vector<optim::ParamGroupOptions<optim::AdamWOptions>>{
      {.params = decay, .options = {.lr = 0.01, .weight_decay = 0.1}},
      {.params = no_decay, .options = {.lr = 0.02, .weight_decay = 0.0}}});
}

// One step on a batch that depends only on the step number (every rank, every run the same).
inline void train_step(Module& model, optim::Optimizer& optimizer, int64_t step) {
  Generator generator(700 + static_cast<uint64_t>(step));
  Tensor inputs = randn({8, 6}, {}, &generator);
  Tensor targets = (rand({8}, {}, &generator) * 4.0).to(kInt64);
  optimizer.zero_grad();
  cross_entropy(model(inputs), targets).backward();
  optimizer.step();
}

inline bool same_parameters(const Module& a, const Module& b) {
  auto x = a.state_dict();
  auto y = b.state_dict();
  if (x.size() != y.size()) return false;
  auto left = x.begin();
  for (auto right = y.begin(); right != y.end(); ++left, ++right) {
    if (left->first != right->first || !same_bytes(left->second, right->second)) return false;
  }
  return true;
}

inline bool same_optimizer_state(const optim::Optimizer& a, const optim::Optimizer& b) {
  optim::StateDict x = a.state_dict();
  optim::StateDict y = b.state_dict();
  if (x.size() != y.size()) return false;
  for (const auto& [key, tensor] : x) {
    auto other = y.find(key);
    if (other == y.end() || !same_bytes(tensor, other->second)) return false;
  }
  return true;
}

}  // namespace dtrain::dist::testing
