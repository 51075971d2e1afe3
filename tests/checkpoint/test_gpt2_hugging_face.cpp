// transformers' own GPT-2 file (tests/data/gpt2_tiny/, made by tests/data/make_gpt2_fixture.py
// with transformers 5.25 and torch 2.15): converted to dtrain's layout, dtrain's GPT computes the
// logits transformers computed, and converting back gives transformers' tensors bit for bit.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "layers/gpt.h"
#include "tests/checkpoint/checkpoint_test_support.h"
#include "train/gpt2_conversion.h"

using namespace dtrain;
using namespace dtrain::train;
using dtrain::train::testing::same_bytes;

namespace {

const std::filesystem::path kFixture = std::filesystem::path(DTRAIN_TEST_DATA_DIR) / "gpt2_tiny";
// The fixture's configuration (tests/data/gpt2_tiny/config.json).
constexpr GPTConfig kTinyGpt2{.vocabulary = 300, .context = 16, .d_model = 32, .layers = 2, .heads = 4};
// Both compute in float32, summing in different orders: a few ulps of logits up to about 5.
constexpr double kLogitTolerance = 1e-4;

// The largest |dtrain - transformers| over the reference tokens' logits, for the first
// `vocabulary` columns.
double largest_logit_difference(const NamedTensors& weights, const GPTConfig& config) {
  auto model = std::make_shared<GPT>(config);
  model->load_state_dict(weights);
  model->eval();
  SafetensorsFile reference = load_safetensors(kFixture / "reference.safetensors");
  const Tensor& expected = reference.tensors.at("logits");  // [2, 16, 300]
  Tensor logits = (*model)(reference.tensors.at("tokens"));
  REQUIRE(logits.shape() == Shape{2, 16, config.vocabulary});
  const std::vector<float> ours = logits.contiguous().to_vector<float>();
  const std::vector<float> theirs = expected.contiguous().to_vector<float>();
  double largest = 0;
  for (int64_t row = 0; row < 2 * 16; ++row) {
    for (int64_t token = 0; token < kTinyGpt2.vocabulary; ++token) {
      const double difference = std::fabs(double(ours[static_cast<size_t>(row * config.vocabulary + token)]) -
                                          double(theirs[static_cast<size_t>(row * kTinyGpt2.vocabulary + token)]));
      largest = std::max(largest, difference);
    }
  }
  return largest;
}

}  // namespace

TEST_CASE("GPT-2 from transformers' file computes transformers' logits in dtrain's GPT") {
  SafetensorsFile hugging_face = load_safetensors(kFixture / "model.safetensors");
  CHECK_FALSE(hugging_face.verified);  // transformers writes no checksums
  NamedTensors weights = gpt2_from_hugging_face(hugging_face.tensors);
  CHECK(largest_logit_difference(weights, kTinyGpt2) <= kLogitTolerance);

  // Padded to 384 tokens (a multiple of 128, as the gpt example pads GPT-2's 50257 to 50304): the
  // real tokens' logits are unchanged.
  GPTConfig padded = kTinyGpt2;
  padded.vocabulary = 384;
  CHECK(largest_logit_difference(gpt2_from_hugging_face(hugging_face.tensors, 384), padded) <= kLogitTolerance);
}

TEST_CASE("GPT-2 converted to dtrain and back is transformers' file, bit for bit") {
  SafetensorsFile hugging_face = load_safetensors(kFixture / "model.safetensors");
  GPTConfig padded = kTinyGpt2;  // through the padded vocabulary, as the gpt example trains it
  padded.vocabulary = 384;
  auto model = std::make_shared<GPT>(padded);
  model->load_state_dict(gpt2_from_hugging_face(hugging_face.tensors, 384));
  NamedTensors state;
  for (const auto& [name, tensor] : model->state_dict()) state[name] = tensor;
  NamedTensors back = gpt2_to_hugging_face(state, kTinyGpt2.vocabulary);
  REQUIRE(back.size() == hugging_face.tensors.size());
  for (const auto& [name, tensor] : hugging_face.tensors) {
    INFO(name);
    const std::string plain = name.substr(std::string("transformer.").size());
    REQUIRE(back.count(plain) == 1);
    CHECK(same_bytes(back.at(plain), tensor));
  }
}
