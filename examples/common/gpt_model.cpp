#include "examples/common/gpt_model.h"

#include <charconv>
#include <system_error>

#include "core/error.h"
#include "core/grad_mode.h"
#include "core/ops/factory.h"
#include "core/ops/elementwise.h"
#include "examples/common/program_exit.h"
#include "layers/transformer.h"

namespace dtrain::examples {

namespace {

constexpr const char* kVocabularyKey = "model.vocabulary";
constexpr const char* kTokensKey = "model.tokens";

int64_t metadata_integer(const std::map<std::string, std::string>& metadata, const std::string& key,
                         const std::string& source) {
  auto found = metadata.find(key);
  if (found == metadata.end()) fail("'", source, "': the checkpoint's metadata has '", kVocabularyKey, "' but no '", key, "'");
  const std::string& text = found->second;
  int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() || value < 0) {
    fail("'", source, "': the checkpoint's metadata '", key, "' is '", text, "', expected a non-negative integer");
  }
  return value;
}

const GptPreset& find_preset(const std::string& name) {
  for (const GptPreset& preset : kGptPresets) {
    if (preset.name == name) return preset;
  }
  fail("no GPT preset named '", name, "'");
}

}  // namespace

std::vector<std::string> gpt_preset_names() {
  std::vector<std::string> names;
  for (const GptPreset& preset : kGptPresets) names.push_back(preset.name);
  return names;
}

void apply_preset(const std::string& name, GptShape& shape) {
  const GptPreset& preset = find_preset(name);
  shape.layers = preset.layers;
  shape.heads = preset.heads;
  shape.d_model = preset.d_model;
  shape.context = preset.context;
  shape.mlp_ratio = 4;
}

std::map<std::string, std::string> gpt_shape_metadata(const GptShape& shape) {
  std::map<std::string, std::string> metadata{{kVocabularyKey, std::to_string(shape.vocabulary)},
                                              {kTokensKey, shape.byte_level ? "bytes" : "ids"}};
  for (const GptShapeFlag& flag : kGptShapeFlags) {
    metadata[std::string("model.") + flag.key] = std::to_string(shape.*flag.field);
  }
  return metadata;
}

std::optional<GptShape> gpt_shape_from_metadata(const std::map<std::string, std::string>& metadata,
                                                const std::string& source) {
  if (metadata.count(kVocabularyKey) == 0) return std::nullopt;
  GptShape shape;
  shape.vocabulary = metadata_integer(metadata, kVocabularyKey, source);
  auto tokens = metadata.find(kTokensKey);
  if (tokens == metadata.end() || (tokens->second != "bytes" && tokens->second != "ids")) {
    fail("'", source, "': the checkpoint's metadata '", kTokensKey, "' is ",
         tokens == metadata.end() ? "missing" : "'" + tokens->second + "'", ", expected bytes or ids");
  }
  shape.byte_level = tokens->second == "bytes";
  for (const GptShapeFlag& flag : kGptShapeFlags) {
    shape.*flag.field = metadata_integer(metadata, std::string("model.") + flag.key, source);
  }
  return shape;
}

GptShape resolve_gpt_shape(const GptShape& from_flags, const std::set<std::string>& given_flags,
                           const std::string& preset, const std::optional<GptShape>& saved,
                           const std::string& checkpoint) {
  GptShape shape = from_flags;
  if (!saved) {
    // The preset under the flags given.
    apply_preset(preset, shape);
    for (const GptShapeFlag& flag : kGptShapeFlags) {
      if (given_flags.count(flag.flag) != 0) shape.*flag.field = from_flags.*flag.field;
    }
    return shape;
  }
  GptShape preset_shape;
  apply_preset(preset, preset_shape);
  for (const GptShapeFlag& flag : kGptShapeFlags) {
    const int64_t saved_value = (*saved).*flag.field;
    if (given_flags.count(flag.flag) != 0) {
      if (from_flags.*flag.field != saved_value) {
        usage_error("--", flag.flag, " ", from_flags.*flag.field, " contradicts the checkpoint ", checkpoint,
                    ", whose model has ", flag.key, " ", saved_value, " (leave the flag out: the checkpoint sets it)");
      }
    } else if (given_flags.count("model") != 0 && preset_shape.*flag.field != saved_value) {
      usage_error("--model ", preset, " (", flag.key, " ", preset_shape.*flag.field, ") contradicts the checkpoint ",
                  checkpoint, ", whose model has ", flag.key, " ", saved_value,
                  " (leave --model out: the checkpoint sets the shape)");
    }
  }
  return *saved;
}

Gpt::Gpt(const GptShape& shape, double dropout) : Module("Gpt") {
  token_embedding_ = register_module("token_embedding", std::make_shared<Embedding>(shape.vocabulary, shape.d_model));
  position_embedding_ = register_module("position_embedding", std::make_shared<Embedding>(shape.context, shape.d_model));
  dropout_ = register_module("dropout", std::make_shared<Dropout>(dropout));
  blocks_ = register_module("blocks", std::make_shared<ModuleList>());
  for (int64_t i = 0; i < shape.layers; ++i) {
    blocks_->push_back(std::make_shared<TransformerBlock>(TransformerConfig{
        .d_model = shape.d_model, .heads = shape.heads, .mlp_ratio = shape.mlp_ratio, .dropout = dropout}));
  }
  final_norm_ = register_module("final_norm", std::make_shared<LayerNorm>(shape.d_model));
  // The output layer reuses the token embedding's weight (weight tying, as GPT-2), as a module
  // of its own, so that ZeRO stage 3 gathers the weight around it.
  output_ = register_module("output", Linear::tied(token_embedding_->weight()));
  // GPT-2 draws embeddings from N(0, 0.02^2). PyTorch's Embedding default, N(0, 1), would make
  // the first logits (through the tied output layer) so large that training starts far off.
  NoGradGuard no_grad;
  for (Tensor weight : {token_embedding_->weight(), position_embedding_->weight()}) normal_(weight, 0.0, 0.02);
}

Tensor Gpt::forward(const Tensor& tokens) {
  Tensor positions = arange(tokens.size(1), {.dtype = kInt64, .device = tokens.device()});
  Tensor x = (*dropout_)((*token_embedding_)(tokens) + (*position_embedding_)(positions));
  for (const std::shared_ptr<Module>& block : *blocks_) x = (*block)(x);
  return (*output_)((*final_norm_)(x));
}

}  // namespace dtrain::examples
