#include "examples/common/gpt_model.h"

#include <charconv>
#include <system_error>

#include "core/error.h"
#include "tools/command_line/program_exit.h"

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

GPTConfig gpt_config(const GptShape& shape, double dropout) {
  return {.vocabulary = shape.vocabulary,
          .context = shape.context,
          .d_model = shape.d_model,
          .layers = shape.layers,
          .heads = shape.heads,
          .mlp_ratio = shape.mlp_ratio,
          .dropout = dropout};
}

}  // namespace dtrain::examples
