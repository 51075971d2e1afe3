// GPT-2 weights between the Hugging Face layout and dtrain's: names, Conv1D transposes, the
// vocabulary padding, the bitwise round trip, and every refusal naming the tensor. (The logits of
// a model converted from transformers' own file: tests/checkpoint/test_gpt2_hugging_face.cpp.)
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/ops/factory.h"
#include "core/random.h"
#include "tests/checkpoint/checkpoint_test_support.h"
#include "train/gpt2_conversion.h"

using namespace dtrain;
using namespace dtrain::train;
using dtrain::train::testing::same_bytes;
using Catch::Contains;

namespace {

constexpr int64_t kVocabulary = 11, kContext = 5, kWidth = 4, kHidden = 16, kLayers = 2;

// Tensors as transformers' GPT2LMHeadModel saves them: Conv1D weights [in, out], the causal-mask
// buffers, the "transformer." prefix.
NamedTensors hugging_face_tensors(DType dtype = kFloat32) {
  manual_seed(17);
  NamedTensors tensors;
  auto add = [&](const std::string& name, Shape shape) {
    tensors["transformer." + name] = randn(shape, {.dtype = dtype});
  };
  add("wte.weight", {kVocabulary, kWidth});
  add("wpe.weight", {kContext, kWidth});
  for (int64_t i = 0; i < kLayers; ++i) {
    const std::string h = "h." + std::to_string(i) + ".";
    add(h + "ln_1.weight", {kWidth});
    add(h + "ln_1.bias", {kWidth});
    add(h + "attn.c_attn.weight", {kWidth, 3 * kWidth});
    add(h + "attn.c_attn.bias", {3 * kWidth});
    add(h + "attn.c_proj.weight", {kWidth, kWidth});
    add(h + "attn.c_proj.bias", {kWidth});
    add(h + "ln_2.weight", {kWidth});
    add(h + "ln_2.bias", {kWidth});
    add(h + "mlp.c_fc.weight", {kWidth, kHidden});
    add(h + "mlp.c_fc.bias", {kHidden});
    add(h + "mlp.c_proj.weight", {kHidden, kWidth});
    add(h + "mlp.c_proj.bias", {kWidth});
    tensors["transformer." + h + "attn.bias"] = ones({1, 1, kContext, kContext});
  }
  add("ln_f.weight", {kWidth});
  add("ln_f.bias", {kWidth});
  tensors["lm_head.weight"] = tensors.at("transformer.wte.weight");
  return tensors;
}

std::vector<double> values(const Tensor& tensor) { return tensor.to(kFloat64).contiguous().to_vector<double>(); }

}  // namespace

TEST_CASE("GPT-2 from the Hugging Face layout: dtrain's names, [out, in] weights, padded vocabulary") {
  NamedTensors hugging_face = hugging_face_tensors();
  NamedTensors converted = gpt2_from_hugging_face(hugging_face, 16);
  CHECK(converted.size() == 2 + 12 * kLayers + 2);  // no mask buffers, no separate output weight

  const std::vector<double> wte = values(hugging_face.at("transformer.wte.weight"));
  REQUIRE(converted.at("token_embedding.weight").shape() == Shape{16, kWidth});
  const std::vector<double> embedding = values(converted.at("token_embedding.weight"));
  for (int64_t row = 0; row < 16; ++row) {
    for (int64_t column = 0; column < kWidth; ++column) {
      const double expected = row < kVocabulary ? wte[static_cast<size_t>(row * kWidth + column)] : 0.0;
      CHECK(embedding[static_cast<size_t>(row * kWidth + column)] == expected);
    }
  }
  const std::vector<double> c_attn = values(hugging_face.at("transformer.h.1.attn.c_attn.weight"));  // [in, out]
  REQUIRE(converted.at("blocks.1.attn.qkv.weight").shape() == Shape{3 * kWidth, kWidth});
  const std::vector<double> qkv = values(converted.at("blocks.1.attn.qkv.weight"));  // [out, in]
  for (int64_t out = 0; out < 3 * kWidth; ++out) {
    for (int64_t in = 0; in < kWidth; ++in) {
      CHECK(qkv[static_cast<size_t>(out * kWidth + in)] == c_attn[static_cast<size_t>(in * 3 * kWidth + out)]);
    }
  }
  CHECK(converted.at("blocks.0.mlp.fc.weight").shape() == Shape{kHidden, kWidth});
  CHECK(converted.at("blocks.0.mlp.proj.weight").shape() == Shape{kWidth, kHidden});
  CHECK(same_bytes(converted.at("blocks.0.ln2.bias"), hugging_face.at("transformer.h.0.ln_2.bias")));
  CHECK(same_bytes(converted.at("final_norm.weight"), hugging_face.at("transformer.ln_f.weight")));

  Gpt2Shape shape = gpt2_shape(converted);
  CHECK(shape.vocabulary == 16);
  CHECK(shape.context == kContext);
  CHECK(shape.d_model == kWidth);
  CHECK(shape.layers == kLayers);
}

TEST_CASE("GPT-2 to the Hugging Face layout and back gives the same bytes, in float32 and bfloat16") {
  for (DType dtype : {kFloat32, kBFloat16}) {
    INFO(dtype_name(dtype));
    NamedTensors hugging_face = hugging_face_tensors(dtype);
    NamedTensors back = gpt2_to_hugging_face(gpt2_from_hugging_face(hugging_face, 16), kVocabulary);
    size_t weights = 0;
    for (const auto& [name, tensor] : hugging_face) {
      const bool mask_buffer = name.size() > 10 && name.compare(name.size() - 10, 10, ".attn.bias") == 0;
      if (name == "lm_head.weight" || mask_buffer) continue;
      ++weights;
      const std::string plain = name.substr(std::string("transformer.").size());
      INFO(plain);
      REQUIRE(back.count(plain) == 1);
      CHECK(same_bytes(back.at(plain), tensor));
    }
    CHECK(back.size() == weights);
  }
  // A training checkpoint's "model." names (and the tied output layer's second name) convert too.
  NamedTensors dtrain_weights = gpt2_from_hugging_face(hugging_face_tensors());
  NamedTensors checkpoint;
  for (const auto& [name, tensor] : dtrain_weights) checkpoint["model." + name] = tensor;
  checkpoint["model.output.weight"] = dtrain_weights.at("token_embedding.weight");
  checkpoint["optimizer.state.0.exp_avg"] = zeros({3});
  CHECK(gpt2_to_hugging_face(checkpoint).size() == dtrain_weights.size());
}

TEST_CASE("GPT-2 conversion refuses, naming the tensor: missing, unexpected, misshapen, untied, too few tokens") {
  NamedTensors missing = hugging_face_tensors();
  missing.erase("transformer.h.1.mlp.c_proj.bias");
  CHECK_THROWS_WITH(gpt2_from_hugging_face(missing), Contains("'h.1.mlp.c_proj.bias' is missing"));

  NamedTensors unexpected = hugging_face_tensors();
  unexpected["transformer.h.0.attn.rotary"] = zeros({2});
  CHECK_THROWS_WITH(gpt2_from_hugging_face(unexpected), Contains("unexpected tensors 'h.0.attn.rotary'"));

  NamedTensors misshapen = hugging_face_tensors();
  misshapen["transformer.h.0.attn.c_proj.weight"] = zeros({kWidth, kWidth + 1});
  CHECK_THROWS_WITH(gpt2_from_hugging_face(misshapen), Contains("'h.0.attn.c_proj.weight' has shape"));

  NamedTensors untied = hugging_face_tensors();
  untied["lm_head.weight"] = zeros({kVocabulary, kWidth});
  CHECK_THROWS_WITH(gpt2_from_hugging_face(untied), Contains("'lm_head.weight' differs from 'wte.weight'"));

  CHECK_THROWS_WITH(gpt2_from_hugging_face(hugging_face_tensors(), kVocabulary - 1),
                    Contains("more than the vocabulary of 10"));
  NamedTensors dtrain_weights = gpt2_from_hugging_face(hugging_face_tensors());
  CHECK_THROWS_WITH(gpt2_to_hugging_face(dtrain_weights, kVocabulary + 1), Contains("fewer than the 12 asked for"));
  dtrain_weights["blocks.1.mlp.fc.weight"] = zeros({kHidden, kWidth + 2});
  CHECK_THROWS_WITH(gpt2_to_hugging_face(dtrain_weights), Contains("'blocks.1.mlp.fc.weight' has shape"));
}
