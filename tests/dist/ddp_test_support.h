#pragma once
// What the DDP tests share: two small models (an MLP and a 2-layer GPT), deterministic global
// batches that every rank can build, and parameter comparisons. Every rank also trains the
// single-process reference on the whole batch itself (the models are tiny), so no rank needs
// another's files.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/core.h"
#include "data/dataset.h"
#include "dist/ddp.h"
#include "dist/init.h"
#include "layers/layers.h"
#include "optim/adamw.h"

namespace dtrain::dist::testing {

// Rows [start, start + count) of a batch (dim 0).
inline Batch rows_of(const Batch& batch, int64_t start, int64_t count) {
  return {batch.inputs.narrow(0, start, count).contiguous(), batch.targets.narrow(0, start, count).contiguous()};
}

// --- the MLP: 6 -> 10 -> 10 -> 4 with ReLU ---------------------------------------------------
constexpr int64_t kMlpInputs = 6;
constexpr int64_t kMlpClasses = 4;

inline std::shared_ptr<Module> make_mlp(DType dtype, uint64_t seed) {
  manual_seed(seed);
  auto model = std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
      std::make_shared<Linear>(kMlpInputs, 10), std::make_shared<ReLU>(), std::make_shared<Linear>(10, 10),
      std::make_shared<ReLU>(), std::make_shared<Linear>(10, kMlpClasses)});
  model->to(dtype);
  return model;
}

// The whole batch of one step, the same on every rank (a generator of its own per step).
inline Batch mlp_batch(int64_t step, int64_t rows, DType dtype) {
  Generator generator(1000 + static_cast<uint64_t>(step));
  Tensor inputs = randn({rows, kMlpInputs}, {.dtype = dtype}, &generator);
  Tensor targets = (rand({rows}, {}, &generator) * static_cast<double>(kMlpClasses)).to(kInt64);
  return {inputs, targets};
}

// --- the GPT: token and position embeddings, 2 pre-norm blocks, final norm, head ------------
constexpr int64_t kGptVocab = 11;
constexpr int64_t kGptContext = 6;

class TinyGPT : public Module {
 public:
  explicit TinyGPT(int64_t layers = 2, int64_t d_model = 8, int64_t heads = 2) : Module("TinyGPT") {
    tokens_ = register_module("tokens", std::make_shared<Embedding>(kGptVocab, d_model));
    positions_ = register_module("positions", std::make_shared<Embedding>(kGptContext, d_model));
    blocks_ = register_module("blocks", std::make_shared<ModuleList>());
    for (int64_t i = 0; i < layers; ++i) {
      blocks_->push_back(std::make_shared<TransformerBlock>(TransformerConfig{.d_model = d_model, .heads = heads}));
    }
    norm_ = register_module("norm", std::make_shared<LayerNorm>(Shape{d_model}));
    head_ = register_module("head", std::make_shared<Linear>(d_model, kGptVocab));
  }

 protected:
  // tokens [B, T] -> logits [B, T, vocab]
  Tensor forward(const Tensor& tokens) override {
    Tensor x = (*tokens_)(tokens) + (*positions_)(arange(tokens.size(1)));
    for (const auto& block : *blocks_) x = (*block)(x);
    return (*head_)((*norm_)(x));
  }

 private:
  std::shared_ptr<Embedding> tokens_;
  std::shared_ptr<Embedding> positions_;
  std::shared_ptr<ModuleList> blocks_;
  std::shared_ptr<LayerNorm> norm_;
  std::shared_ptr<Linear> head_;
};

inline std::shared_ptr<Module> make_gpt(DType dtype, uint64_t seed) {
  manual_seed(seed);
  auto model = std::make_shared<TinyGPT>();
  model->to(dtype);
  return model;
}

inline Batch gpt_batch(int64_t step, int64_t rows, DType /*dtype*/) {
  Generator generator(5000 + static_cast<uint64_t>(step));
  Tensor tokens = (rand({rows, kGptContext + 1}, {}, &generator) * static_cast<double>(kGptVocab)).to(kInt64);
  return {tokens.narrow(1, 0, kGptContext).contiguous(), tokens.narrow(1, 1, kGptContext).contiguous()};
}

// --- comparisons ----------------------------------------------------------------------------

// max |a - b| / max |b| (0 when both are zero).
inline double relative_difference(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double difference = 0;
  double scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    difference = std::max(difference, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return scale == 0 ? difference : difference / scale;
}

inline double relative_difference(const Tensor& actual, const Tensor& expected) {
  return relative_difference(actual.to_vector<double>(), expected.to_vector<double>());
}

// The largest relative_difference over the models' parameters, which must pair up by name.
inline double max_parameter_difference(const Module& actual, const Module& expected, std::string* worst = nullptr) {
  std::vector<NamedTensor> a = actual.named_parameters();
  std::vector<NamedTensor> b = expected.named_parameters();
  REQUIRE(a.size() == b.size());
  double largest = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    REQUIRE(a[i].first == b[i].first);
    double difference = relative_difference(a[i].second, b[i].second);
    if (difference >= largest) {
      largest = difference;
      if (worst) *worst = a[i].first;
    }
  }
  return largest;
}

// Every rank's value of x, gathered (for checks that ranks agree).
inline std::vector<double> gather_scalar(double x) {
  Tensor input = from_vector(std::vector<double>{x});
  Tensor output = empty({world().size()}, {.dtype = kFloat64});
  world().all_gather(input, output)->wait();
  return output.to_vector<double>();
}

}  // namespace dtrain::dist::testing
