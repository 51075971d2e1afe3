// dtrain-convert: GPT-2 weights between the Hugging Face layout and dtrain's GPT
// (train/gpt2_conversion.h).
//
//   dtrain-convert from-hugging-face gpt2/model.safetensors gpt2.safetensors --vocabulary 50304
//   dtrain-convert to-hugging-face model.safetensors gpt2-out/ --heads 12 [--vocabulary 50257]
//
// from-hugging-face reads transformers' model.safetensors (GPT2Model or GPT2LMHeadModel) and
// writes dtrain's names, the token embedding padded to --vocabulary rows. to-hugging-face reads a
// dtrain model (a consolidated checkpoint, or a training checkpoint's model.* tensors) and writes
// a folder transformers loads with GPT2LMHeadModel.from_pretrained: model.safetensors and
// config.json (the number of heads is not in the weights: --heads). Exit status: 0 written,
// 1 a file could not be read, converted or written, 2 wrong usage.
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/safetensors.h"
#include "train/checkpoint_names.h"
#include "train/gpt2_conversion.h"

namespace {

constexpr const char* kUsage =
    "usage: dtrain-convert from-hugging-face <model.safetensors> <output.safetensors> [--vocabulary N]\n"
    "       dtrain-convert to-hugging-face <dtrain model.safetensors> <output folder> --heads N [--vocabulary N]\n"
    "  from-hugging-face  transformers' GPT-2 weights to dtrain's GPT names; --vocabulary pads the token\n"
    "                     embedding with zero rows (GPT-2's 50257 tokens to 50304, as the gpt example uses)\n"
    "  to-hugging-face    dtrain's GPT weights to a folder GPT2LMHeadModel.from_pretrained loads\n"
    "                     (model.safetensors, config.json); --vocabulary keeps the first N token rows\n";

// One line on stderr and exit code 2, as every dtrain program does on a usage error.
int usage_error(const std::string& message) {
  std::fprintf(stderr, "dtrain-convert: %s (see dtrain-convert --help)\n", message.c_str());
  return 2;
}

bool parse_count(const std::string& text, int64_t& value) {
  try {
    size_t used = 0;
    value = std::stoll(text, &used);
    return used == text.size() && value > 0;
  } catch (const std::exception&) {
    return false;
  }
}

// transformers' GPT2Config for the converted weights: the fields from_pretrained needs, the rest
// left to transformers' defaults (dropout is irrelevant to loading).
std::string hugging_face_config(const dtrain::train::Gpt2Shape& shape, int64_t vocabulary, int64_t heads) {
  return dtrain::detail::concat(
      "{\n  \"architectures\": [\"GPT2LMHeadModel\"],\n  \"model_type\": \"gpt2\",\n  \"activation_function\": "
      "\"gelu_new\",\n  \"layer_norm_epsilon\": 1e-05,\n  \"tie_word_embeddings\": true,\n  \"vocab_size\": ",
      vocabulary, ",\n  \"n_positions\": ", shape.context, ",\n  \"n_embd\": ", shape.d_model, ",\n  \"n_layer\": ",
      shape.layers, ",\n  \"n_head\": ", heads, "\n}\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> positional;
  int64_t vocabulary = 0, heads = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string argument = argv[i];
    if (argument == "--help" || argument == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (argument == "--vocabulary" || argument == "--heads") {
      if (i + 1 >= argc) return usage_error(argument + " needs a value");
      int64_t& target = argument == "--vocabulary" ? vocabulary : heads;
      if (!parse_count(argv[++i], target)) {
        return usage_error(argument + " expects a positive integer, got '" + argv[i] + "'");
      }
    } else if (argument.rfind("--", 0) == 0) {
      return usage_error("unknown option '" + argument + "'");
    } else {
      positional.push_back(argument);
    }
  }
  if (positional.size() != 3) {
    return usage_error(dtrain::detail::concat("expected a direction, an input and an output, got ", positional.size(),
                                              " arguments"));
  }
  const std::string& direction = positional[0];
  if (direction != "from-hugging-face" && direction != "to-hugging-face") {
    return usage_error("the direction is from-hugging-face or to-hugging-face, got '" + direction + "'");
  }
  if (direction == "to-hugging-face" && heads == 0) return usage_error("to-hugging-face needs --heads N");
  try {
    dtrain::SafetensorsFile input = dtrain::load_safetensors(positional[1]);
    if (direction == "from-hugging-face") {
      dtrain::train::NamedTensors converted = dtrain::train::gpt2_from_hugging_face(input.tensors, vocabulary);
      // Under "model.<name>", as a consolidated checkpoint (train/checkpoint_names.h).
      dtrain::train::NamedTensors named;
      for (const auto& [name, tensor] : converted) named.emplace(dtrain::train::model_key(name), tensor);
      dtrain::save_safetensors(positional[2], named);
      dtrain::train::Gpt2Shape shape = dtrain::train::gpt2_shape(converted);
      std::printf("wrote %zu tensors to %s: %lld layers, d_model %lld, context %lld, vocabulary %lld%s\n",
                  converted.size(), positional[2].c_str(), static_cast<long long>(shape.layers),
                  static_cast<long long>(shape.d_model), static_cast<long long>(shape.context),
                  static_cast<long long>(shape.vocabulary), input.verified ? "" : " (the input carried no checksums)");
      return 0;
    }
    dtrain::train::NamedTensors converted = dtrain::train::gpt2_to_hugging_face(input.tensors, vocabulary);
    dtrain::train::Gpt2Shape shape = dtrain::train::gpt2_shape(input.tensors);
    if (shape.d_model % heads != 0) {
      dtrain::fail("--heads ", heads, " does not divide the model's d_model ", shape.d_model);
    }
    const std::filesystem::path folder = positional[2];
    std::filesystem::create_directories(folder);
    dtrain::save_safetensors(folder / "model.safetensors", converted, {{"format", "pt"}});
    const int64_t kept = vocabulary != 0 ? vocabulary : shape.vocabulary;
    std::ofstream config(folder / "config.json");
    config << hugging_face_config(shape, kept, heads);
    if (!config.flush()) dtrain::fail("could not write '", (folder / "config.json").string(), "'");
    std::printf("wrote %zu tensors and config.json to %s: %lld layers, %lld heads, d_model %lld, vocabulary %lld\n",
                converted.size(), folder.string().c_str(), static_cast<long long>(shape.layers),
                static_cast<long long>(heads), static_cast<long long>(shape.d_model), static_cast<long long>(kept));
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "dtrain-convert: %s\n", error.what());
    return 1;
  }
}
