#pragma once
// What the ZeRO tests share: training a ZeroOptimizer and DistributedDataParallel side by side on
// the same data (every rank its own rows of the same global batch), comparing their parameters,
// and an in-memory FragmentSource assembled from every rank's state_fragments().
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dist/tensor_fragment.h"
#include "dist/zero/zero.h"
#include "optim/clip_grad.h"
#include "tests/dist/ddp_test_support.h"

namespace dtrain::dist::testing {

using ModelFactory = std::function<std::shared_ptr<Module>(DType, uint64_t)>;
using BatchFactory = std::function<Batch(int64_t step, int64_t rows, DType)>;

inline const optim::AdamWOptions kAdamW{.lr = 1e-2, .weight_decay = 0.1};

// Relative difference between named tensors, leaving out (when skip_key_bias) the key third of
// each attention's qkv bias: its gradient is zero in exact arithmetic, so in float32 both runs
// feed Adam rounding noise that its normalisation blows up to steps of ~lr/10 with random signs
// (see tests/dist/test_ddp_equivalence.cpp); that says nothing about ZeRO.
inline double max_difference(const std::vector<NamedTensor>& actual, const std::vector<NamedTensor>& expected,
                             bool skip_key_bias, std::string* worst) {
  REQUIRE(actual.size() == expected.size());
  double largest = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    REQUIRE(actual[i].first == expected[i].first);
    std::vector<double> x = actual[i].second.to_vector<double>();
    std::vector<double> y = expected[i].second.to_vector<double>();
    const std::string& name = actual[i].first;
    if (skip_key_bias && name.size() >= 13 && name.compare(name.size() - 13, 13, "attn.qkv.bias") == 0) {
      const auto third = static_cast<std::ptrdiff_t>(x.size() / 3);
      x.erase(x.begin() + third, x.begin() + 2 * third);
      y.erase(y.begin() + third, y.begin() + 2 * third);
    }
    const double difference = relative_difference(x, y);
    if (difference >= largest) {
      largest = difference;
      if (worst) *worst = name;
    }
  }
  return largest;
}

// sqrt(sum |a - b|^2) / sqrt(sum |b|^2) over all the tensors together: an average over
// elements, where max_difference is the worst one.
inline double relative_l2_difference(const std::vector<NamedTensor>& actual, const std::vector<NamedTensor>& expected) {
  REQUIRE(actual.size() == expected.size());
  double difference = 0;
  double norm = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    std::vector<double> x = actual[i].second.to_vector<double>();
    std::vector<double> y = expected[i].second.to_vector<double>();
    REQUIRE(x.size() == y.size());
    for (size_t j = 0; j < x.size(); ++j) {
      difference += (x[j] - y[j]) * (x[j] - y[j]);
      norm += y[j] * y[j];
    }
  }
  return std::sqrt(difference / norm);
}

inline std::vector<NamedTensor> entries(const StateDict& dict) {
  std::vector<NamedTensor> result;
  for (const auto& [name, tensor] : dict) result.emplace_back(name, tensor);
  return result;
}

struct TrainingPlan {
  int steps = 20;
  int micro_steps = 1;     // gradient accumulation: backwards per step
  double clip = 0;         // max gradient norm; 0: no clipping
  int64_t rows_per_rank = 3;
};

struct Comparison {
  double difference = 0;       // largest relative parameter difference, ZeRO vs DDP
  std::string worst;
  double norm_difference = 0;  // largest relative difference of the clipping norms
  int clipped_steps = 0;       // steps where the norm was above the limit
};

// Trains model_factory's model with ZeRO (options) and with DDP on the same rows for plan.steps
// AdamW steps and compares the parameters.
inline Comparison train_zero_and_ddp(const ModelFactory& make_model, const BatchFactory& make_batch, DType dtype,
                                     ZeroOptions options, TrainingPlan plan = {}) {
  const int ranks = world().size();
  const int rank = world().rank();
  // Each rank starts from its own initialisation: both must replace it by rank 0's.
  std::shared_ptr<Module> zero_model = make_model(dtype, 7 + static_cast<uint64_t>(rank));
  std::shared_ptr<Module> ddp_model = make_model(dtype, 7 + static_cast<uint64_t>(rank));
  ZeroOptimizer zero(zero_model, zero_optimizer<optim::AdamW>(kAdamW), options);
  DistributedDataParallel ddp(ddp_model);
  optim::AdamW ddp_optimizer(ddp_model->parameters(), kAdamW);

  Comparison result;
  for (int step = 0; step < plan.steps; ++step) {
    const int64_t rows = plan.rows_per_rank * plan.micro_steps;
    Batch whole = make_batch(step, rows * ranks, dtype);
    Batch mine = rows_of(whole, rows * rank, rows);
    zero.zero_grad();
    ddp_optimizer.zero_grad();
    for (int micro = 0; micro < plan.micro_steps; ++micro) {
      Batch part = rows_of(mine, plan.rows_per_rank * micro, plan.rows_per_rank);
      const double share = 1.0 / plan.micro_steps;
      zero.backward(mul(cross_entropy(zero(part.inputs), part.targets), share));
      if (micro + 1 < plan.micro_steps) {
        auto guard = ddp.no_sync();
        mul(cross_entropy(ddp(part.inputs), part.targets), share).backward();
      } else {
        mul(cross_entropy(ddp(part.inputs), part.targets), share).backward();
      }
    }
    if (plan.clip > 0) {
      const double zero_norm = zero.clip_grad_norm(plan.clip);
      const double ddp_norm = optim::clip_grad_norm(ddp_model->parameters(), plan.clip);
      result.norm_difference = std::max(result.norm_difference, std::abs(zero_norm - ddp_norm) / ddp_norm);
      if (ddp_norm > plan.clip) ++result.clipped_steps;
    }
    REQUIRE(zero.step());
    ddp_optimizer.step();
  }
  StateDict full = zero.full_parameters();
  result.difference = max_difference(entries(full), ddp_model->named_parameters(), dtype != kFloat64, &result.worst);
  // Below stage 3 the model's own (compute) parameters were all-gathered from the shards: without
  // mixed precision they are the masters, bitwise, on every rank.
  if (options.stage < 3 && zero.compute_dtype() == zero.master_dtype()) {
    CHECK(max_difference(zero_model->named_parameters(), entries(full), false, nullptr) == 0.0);
  }
  return result;
}

// --- fragments across ranks ------------------------------------------------------------------

// Every rank's fragments, on every rank: serialised into int64 words and all-gathered.
inline std::vector<TensorFragment> all_ranks_fragments(const std::vector<TensorFragment>& mine) {
  std::vector<char> bytes;
  auto put = [&bytes](const void* data, size_t size) {
    const char* begin = static_cast<const char*>(data);
    bytes.insert(bytes.end(), begin, begin + size);
  };
  for (const TensorFragment& fragment : mine) {
    const int64_t header[5] = {static_cast<int64_t>(fragment.name.size()), static_cast<int64_t>(fragment.data.dtype()),
                               static_cast<int64_t>(fragment.shape.size()), fragment.begin, fragment.data.numel()};
    put(header, sizeof header);
    put(fragment.name.data(), fragment.name.size());
    for (int64_t extent : fragment.shape) put(&extent, sizeof extent);
    Tensor data = fragment.data.contiguous();
    put(data.data(), data.nbytes());
  }
  const int64_t words = static_cast<int64_t>((bytes.size() + 7) / 8);
  Tensor counts = empty({world().size()}, {.dtype = kInt64});
  world().all_gather(from_vector(std::vector<int64_t>{words}), counts)->wait();
  int64_t longest = 0;
  for (int64_t count : counts.to_vector<int64_t>()) longest = std::max(longest, count);
  std::vector<int64_t> padded(static_cast<size_t>(std::max<int64_t>(longest, 1)), 0);
  std::memcpy(padded.data(), bytes.data(), bytes.size());
  Tensor everything = empty({static_cast<int64_t>(padded.size()) * world().size()}, {.dtype = kInt64});
  world().all_gather(from_vector(padded), everything)->wait();

  std::vector<TensorFragment> result;
  const std::vector<int64_t> all = everything.to_vector<int64_t>();
  const std::vector<int64_t> sizes = counts.to_vector<int64_t>();
  for (int r = 0; r < world().size(); ++r) {
    const char* cursor = reinterpret_cast<const char*>(all.data() + r * padded.size());
    const char* end = cursor + sizes[static_cast<size_t>(r)] * 8;
    auto take = [&cursor](void* out, size_t size) {
      std::memcpy(out, cursor, size);
      cursor += size;
    };
    while (end - cursor >= static_cast<std::ptrdiff_t>(5 * sizeof(int64_t))) {
      int64_t header[5];
      take(header, sizeof header);
      if (header[0] == 0 && header[4] == 0 && header[2] == 0) break;  // the zero padding of the last word
      TensorFragment fragment;
      fragment.name.resize(static_cast<size_t>(header[0]));
      take(fragment.name.data(), fragment.name.size());
      for (int64_t d = 0; d < header[2]; ++d) {
        int64_t extent;
        take(&extent, sizeof extent);
        fragment.shape.push_back(extent);
      }
      fragment.begin = header[3];
      fragment.data = empty({header[4]}, {.dtype = static_cast<DType>(header[1])});
      take(fragment.data.data(), fragment.data.nbytes());
      result.push_back(std::move(fragment));
    }
  }
  return result;
}

// Whole tensors assembled from fragments; reading an element no fragment covered, or one that
// two fragments covered, raises — so loading from it also checks that the saved fragments tile
// every tensor exactly once.
class InMemoryFragments : public FragmentSource {
 public:
  explicit InMemoryFragments(const std::vector<TensorFragment>& fragments) {
    for (const TensorFragment& fragment : fragments) {
      auto [entry, created] = tensors_.try_emplace(fragment.name);
      if (created) {
        entry->second.shape = fragment.shape;
        entry->second.whole = zeros({fragment.shape.numel()}, {.dtype = fragment.data.dtype()});
        entry->second.coverage.assign(static_cast<size_t>(fragment.shape.numel()), 0);
      }
      REQUIRE(entry->second.shape == fragment.shape);
      REQUIRE(fragment.end() <= fragment.shape.numel());
      entry->second.whole.narrow(0, fragment.begin, fragment.data.numel()).copy_(fragment.data);
      for (int64_t i = fragment.begin; i < fragment.end(); ++i) ++entry->second.coverage[static_cast<size_t>(i)];
    }
  }

  bool contains(const std::string& name) const override { return tensors_.count(name) != 0; }
  Shape shape(const std::string& name) const override { return entry(name).shape; }
  DType dtype(const std::string& name) const override { return entry(name).whole.dtype(); }
  Tensor read(const std::string& name, int64_t begin, int64_t end) const override {
    const Entry& found = entry(name);
    if (begin < 0 || end > found.whole.numel() || begin > end) fail("InMemoryFragments: range out of '", name, "'");
    for (int64_t i = begin; i < end; ++i) {
      if (found.coverage[static_cast<size_t>(i)] != 1) {
        fail("InMemoryFragments: element ", i, " of '", name, "' was saved ", found.coverage[static_cast<size_t>(i)],
             " times");
      }
    }
    return found.whole.narrow(0, begin, end - begin).clone();
  }
  // Whether every element of every tensor was saved exactly once.
  bool tiles_exactly() const {
    for (const auto& [name, found] : tensors_) {
      for (int count : found.coverage) {
        if (count != 1) return false;
      }
    }
    return true;
  }
  std::vector<std::string> names() const override {
    std::vector<std::string> result;
    for (const auto& [name, found] : tensors_) result.push_back(name);
    return result;
  }

 private:
  struct Entry {
    Shape shape;
    Tensor whole;
    std::vector<int> coverage;
  };
  const Entry& entry(const std::string& name) const {
    auto found = tensors_.find(name);
    if (found == tensors_.end()) fail("InMemoryFragments: no tensor '", name, "'");
    return found->second;
  }
  std::map<std::string, Entry> tensors_;
};

}  // namespace dtrain::dist::testing
