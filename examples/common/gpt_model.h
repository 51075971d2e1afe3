#pragma once
// The GPT example's model (GPT-2's architecture: token and position embeddings, pre-norm
// transformer blocks, GELU-tanh MLPs, a tied output layer), its shape, the presets --model names
// and the shape as a checkpoint's metadata, so that --resume and generation need no size flags.
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "data/token_corpus.h"
#include "layers/gpt.h"

namespace dtrain::examples {

struct GptShape {
  int64_t vocabulary = kByteVocabulary;
  bool byte_level = true;  // tokens are bytes of text (prompts are text); false: a tokenizer's ids
  int64_t context = 128;   // tokens the model sees at once
  int64_t d_model = 256;
  int64_t layers = 4;
  int64_t heads = 4;
  int64_t mlp_ratio = 4;
  friend bool operator==(const GptShape&, const GptShape&) = default;
};

// --model: layers, heads, d_model and context as GPT-2's (mlp_ratio 4 in all).
struct GptPreset {
  std::string name;
  int64_t layers, heads, d_model, context;
};
inline const std::vector<GptPreset> kGptPresets = {
    {"tiny", 4, 4, 256, 128},            // trains on a laptop's CPU in minutes
    {"gpt2-124m", 12, 12, 768, 1024},    // GPT-2 small
    {"gpt2-350m", 24, 16, 1024, 1024}};  // GPT-2 medium
std::vector<std::string> gpt_preset_names();
void apply_preset(const std::string& name, GptShape& shape);

// The shape flags (--context, --d-model, --layers, --heads, --mlp-ratio) by name, and the field
// each sets.
struct GptShapeFlag {
  const char* flag;
  const char* key;  // in the checkpoint metadata: "model.<key>"
  int64_t GptShape::*field;
};
inline const std::vector<GptShapeFlag> kGptShapeFlags = {{"context", "context", &GptShape::context},
                                                         {"d-model", "d_model", &GptShape::d_model},
                                                         {"layers", "layers", &GptShape::layers},
                                                         {"heads", "heads", &GptShape::heads},
                                                         {"mlp-ratio", "mlp_ratio", &GptShape::mlp_ratio}};

// The shape as checkpoint metadata ("model.vocabulary", "model.tokens" = bytes|ids, and one key
// per shape flag), and back. From a checkpoint written before the shape was saved: nullopt. A
// malformed value raises naming the source and the key.
std::map<std::string, std::string> gpt_shape_metadata(const GptShape& shape);
std::optional<GptShape> gpt_shape_from_metadata(const std::map<std::string, std::string>& metadata,
                                                const std::string& source);

// The shape a run builds. Without a saved shape: the flags' values (the preset's, overridden by
// flags given). With one (resuming, generating): the saved shape, and a flag given that
// contradicts it — or a --model given whose preset does — is a usage error naming both values.
GptShape resolve_gpt_shape(const GptShape& from_flags, const std::set<std::string>& given_flags,
                           const std::string& preset, const std::optional<GptShape>& saved,
                           const std::string& checkpoint);

// The library model (layers/gpt.h) of that shape.
GPTConfig gpt_config(const GptShape& shape, double dropout);

}  // namespace dtrain::examples
