// dtrain-convert: GPT-2 weights between the Hugging Face layout and dtrain's GPT
// (train/gpt2_conversion.h).
//
//   dtrain-convert from-hugging-face gpt2/model.safetensors gpt2.safetensors --vocabulary 50304
//   dtrain-convert to-hugging-face model.safetensors gpt2-out/ --heads 12 [--vocabulary 50257]
//
// from-hugging-face reads transformers' model.safetensors (GPT2Model or GPT2LMHeadModel) and
// writes dtrain's names ("model.<name>", as a consolidated checkpoint), the token embedding
// padded to --vocabulary rows. to-hugging-face reads a dtrain model (a consolidated checkpoint,
// or a training checkpoint's model.* tensors; bare names also load) and writes
// a folder transformers loads with GPT2LMHeadModel.from_pretrained: model.safetensors and
// config.json (the number of heads is not in the weights: --heads). Exit status: 0 written,
// 1 a file could not be read, converted or written, 2 wrong usage (tools/command_line/).
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "core/error.h"
#include "core/safetensors.h"
#include "tools/command_line/flags.h"
#include "tools/command_line/program_exit.h"
#include "train/checkpoint_names.h"
#include "train/gpt2_conversion.h"

namespace {

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
  using dtrain::command_line::usage_error;
  return dtrain::command_line::run_program("dtrain-convert", [&] {
    std::string direction, input_path, output_path;
    int64_t vocabulary = 0, heads = 0;
    dtrain::command_line::FlagParser flags(
        "dtrain-convert",
        "GPT-2 weights between transformers' layout and dtrain's GPT. from-hugging-face reads transformers'\n"
        "model.safetensors (GPT2Model or GPT2LMHeadModel) and writes dtrain's names (model.<name>);\n"
        "to-hugging-face reads dtrain's GPT weights (a consolidated or training checkpoint) and writes a folder\n"
        "that GPT2LMHeadModel.from_pretrained loads (model.safetensors, config.json).");
    flags.add_argument("direction", direction, "which way to convert", {"from-hugging-face", "to-hugging-face"});
    flags.add_argument("input", input_path, "the safetensors file to read");
    flags.add_argument("output", output_path, "the file (from-hugging-face) or folder (to-hugging-face) to write");
    flags.add("vocabulary", vocabulary,
              "token rows: pad with zero rows to N (from; 50304 for GPT-2), keep the first N (to); 0: all");
    flags.add("heads", heads, "attention heads, needed by to-hugging-face (not in the weights)");
    const std::set<std::string> given = flags.parse(argc, argv);
    if (given.count("vocabulary") && vocabulary < 1) usage_error("--vocabulary must be >= 1, got ", vocabulary);
    if (given.count("heads") && heads < 1) usage_error("--heads must be >= 1, got ", heads);
    if (direction == "to-hugging-face" && heads == 0) usage_error("to-hugging-face needs --heads N (see --help)");

    dtrain::SafetensorsFile input = dtrain::load_safetensors(input_path);
    if (direction == "from-hugging-face") {
      dtrain::train::NamedTensors converted = dtrain::train::gpt2_from_hugging_face(input.tensors, vocabulary);
      // Under "model.<name>", as a consolidated checkpoint (train/checkpoint_names.h).
      dtrain::train::NamedTensors named;
      for (const auto& [name, tensor] : converted) named.emplace(dtrain::train::model_key(name), tensor);
      dtrain::save_safetensors(output_path, named);
      dtrain::train::Gpt2Shape shape = dtrain::train::gpt2_shape(converted);
      std::printf("wrote %zu tensors to %s: %lld layers, d_model %lld, context %lld, vocabulary %lld%s\n",
                  converted.size(), output_path.c_str(), static_cast<long long>(shape.layers),
                  static_cast<long long>(shape.d_model), static_cast<long long>(shape.context),
                  static_cast<long long>(shape.vocabulary), input.verified ? "" : " (the input carried no checksums)");
      return;
    }
    dtrain::train::NamedTensors converted = dtrain::train::gpt2_to_hugging_face(input.tensors, vocabulary);
    dtrain::train::Gpt2Shape shape = dtrain::train::gpt2_shape(input.tensors);
    if (shape.d_model % heads != 0) {
      dtrain::fail("--heads ", heads, " does not divide the model's d_model ", shape.d_model);
    }
    const std::filesystem::path folder = output_path;
    std::filesystem::create_directories(folder);
    dtrain::save_safetensors(folder / "model.safetensors", converted, {{"format", "pt"}});
    const int64_t kept = vocabulary != 0 ? vocabulary : shape.vocabulary;
    std::ofstream config(folder / "config.json");
    config << hugging_face_config(shape, kept, heads);
    if (!config.flush()) dtrain::fail("could not write '", (folder / "config.json").string(), "'");
    std::printf("wrote %zu tensors and config.json to %s: %lld layers, %lld heads, d_model %lld, vocabulary %lld\n",
                converted.size(), folder.string().c_str(), static_cast<long long>(shape.layers),
                static_cast<long long>(heads), static_cast<long long>(shape.d_model), static_cast<long long>(kept));
  });
}
