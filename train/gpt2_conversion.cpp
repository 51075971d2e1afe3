#include "train/gpt2_conversion.h"

#include <algorithm>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/ops/elementwise.h"
#include "core/ops/factory.h"
#include "core/ops/join.h"
#include "core/ops/view.h"

namespace dtrain::train {
namespace {

bool starts_with(const std::string& text, const std::string& prefix) { return text.compare(0, prefix.size(), prefix) == 0; }

// "h.<i>.rest" or "blocks.<i>.rest": i, or -1 when the name is not of that form.
int64_t layer_index(const std::string& name, const std::string& prefix) {
  if (!starts_with(name, prefix)) return -1;
  const size_t end = name.find('.', prefix.size());
  if (end == std::string::npos || end == prefix.size()) return -1;
  const std::string digits = name.substr(prefix.size(), end - prefix.size());
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }) || digits.size() > 6) {
    return -1;
  }
  return std::stoll(digits);
}

int64_t count_layers(const NamedTensors& tensors, const std::string& prefix) {
  int64_t layers = 0;
  for (const auto& [name, tensor] : tensors) layers = std::max(layers, layer_index(name, prefix) + 1);
  return layers;
}

bool same_values(const Tensor& a, const Tensor& b) {
  return a.is_same(b) || (a.shape() == b.shape() && a.dtype() == b.dtype() && allclose(a, b, 0.0, 0.0));
}

// Takes tensors out of a name -> tensor map, checking shapes; what is left over at the end was
// not expected.
class TensorTaker {
 public:
  TensorTaker(NamedTensors tensors, std::string layout) : tensors_(std::move(tensors)), layout_(std::move(layout)) {}

  Tensor take(const std::string& name, const Shape& expected_shape) {
    auto found = tensors_.find(name);
    if (found == tensors_.end()) fail(layout_, ": the tensor '", name, "' is missing");
    Tensor tensor = found->second;
    tensors_.erase(found);
    if (tensor.shape() != expected_shape) {
      fail(layout_, ": '", name, "' has shape ", tensor.shape(), ", expected ", expected_shape);
    }
    return tensor;
  }
  const Tensor& peek(const std::string& name) const {
    auto found = tensors_.find(name);
    if (found == tensors_.end()) fail(layout_, ": the tensor '", name, "' is missing");
    return found->second;
  }
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  void drop(const std::string& name) { tensors_.erase(name); }
  void check_all_taken() const {
    if (tensors_.empty()) return;
    std::string names;
    for (const auto& [name, tensor] : tensors_) names += (names.empty() ? "'" : ", '") + name + "'";
    fail(layout_, ": unexpected tensors ", names, " (not part of a GPT-2 model)");
  }

 private:
  NamedTensors tensors_;
  std::string layout_;
};

Tensor transposed(const Tensor& weight) { return transpose(weight, 0, 1).contiguous(); }

// The names of one block's tensors in both layouts, and whether the weight is stored transposed
// (Conv1D) in the Hugging Face layout.
struct BlockTensor {
  const char* hugging_face;
  const char* dtrain;
  bool conv1d_weight;
};
constexpr BlockTensor kBlockTensors[] = {
    {"ln_1.weight", "ln1.weight", false},          {"ln_1.bias", "ln1.bias", false},
    {"attn.c_attn.weight", "attn.qkv.weight", true}, {"attn.c_attn.bias", "attn.qkv.bias", false},
    {"attn.c_proj.weight", "attn.proj.weight", true}, {"attn.c_proj.bias", "attn.proj.bias", false},
    {"ln_2.weight", "ln2.weight", false},          {"ln_2.bias", "ln2.bias", false},
    {"mlp.c_fc.weight", "mlp.fc.weight", true},    {"mlp.c_fc.bias", "mlp.fc.bias", false},
    {"mlp.c_proj.weight", "mlp.proj.weight", true}, {"mlp.c_proj.bias", "mlp.proj.bias", false},
};

// The shape of a block tensor in dtrain's layout ([out, in] weights) for width d and MLP width h.
Shape dtrain_block_shape(const std::string& dtrain_name, int64_t d, int64_t h) {
  if (dtrain_name == "attn.qkv.weight") return {3 * d, d};
  if (dtrain_name == "attn.qkv.bias") return {3 * d};
  if (dtrain_name == "attn.proj.weight") return {d, d};
  if (dtrain_name == "mlp.fc.weight") return {h, d};
  if (dtrain_name == "mlp.fc.bias") return {h};
  if (dtrain_name == "mlp.proj.weight") return {d, h};
  return {d};  // LayerNorm weights and biases, the projections' biases
}

Shape reversed(const Shape& shape) { return shape.size() == 2 ? Shape{shape[1], shape[0]} : shape; }

}  // namespace

NamedTensors gpt2_from_hugging_face(const NamedTensors& hugging_face, int64_t vocabulary) {
  const std::string layout = "GPT-2 weights in the Hugging Face layout";
  NamedTensors stripped;
  for (const auto& [name, tensor] : hugging_face) {
    stripped[starts_with(name, "transformer.") ? name.substr(std::string("transformer.").size()) : name] = tensor;
  }
  const int64_t layers = count_layers(stripped, "h.");
  TensorTaker source(std::move(stripped), layout);
  const Tensor& token_embedding = source.peek("wte.weight");
  if (token_embedding.dim() != 2) fail(layout, ": 'wte.weight' must be [vocabulary, d_model], got ", token_embedding.shape());
  const int64_t file_vocabulary = token_embedding.size(0), d = token_embedding.size(1);
  if (vocabulary != 0 && vocabulary < file_vocabulary) {
    fail(layout, ": the file has ", file_vocabulary, " tokens, more than the vocabulary of ", vocabulary, " asked for");
  }
  if (source.contains("lm_head.weight")) {
    if (!same_values(source.peek("lm_head.weight"), token_embedding)) {
      fail(layout, ": 'lm_head.weight' differs from 'wte.weight'; dtrain's GPT ties its output layer to the token "
           "embedding");
    }
    source.drop("lm_head.weight");
  }
  const Tensor& fc_weight = source.peek("h.0.mlp.c_fc.weight");
  if (fc_weight.dim() != 2) fail(layout, ": 'h.0.mlp.c_fc.weight' must be [d_model, hidden], got ", fc_weight.shape());
  const int64_t hidden = fc_weight.size(1);
  const int64_t context = source.peek("wpe.weight").size(0);

  NamedTensors out;
  Tensor wte = source.take("wte.weight", {file_vocabulary, d});
  if (vocabulary > file_vocabulary) {
    wte = cat({wte, zeros({vocabulary - file_vocabulary, d}, {.dtype = wte.dtype()})}, 0);
  }
  out["token_embedding.weight"] = wte.contiguous();
  out["position_embedding.weight"] = source.take("wpe.weight", {context, d});
  for (int64_t i = 0; i < layers; ++i) {
    const std::string from = "h." + std::to_string(i) + ".", to = "blocks." + std::to_string(i) + ".";
    source.drop(from + "attn.bias");         // the causal mask, a buffer, not a weight
    source.drop(from + "attn.masked_bias");  // older transformers versions save this one too
    for (const BlockTensor& tensor : kBlockTensors) {
      const Shape shape = dtrain_block_shape(tensor.dtrain, d, hidden);
      Tensor value = source.take(from + tensor.hugging_face, tensor.conv1d_weight ? reversed(shape) : shape);
      out[to + tensor.dtrain] = tensor.conv1d_weight ? transposed(value) : value;
    }
  }
  out["final_norm.weight"] = source.take("ln_f.weight", {d});
  out["final_norm.bias"] = source.take("ln_f.bias", {d});
  source.check_all_taken();
  return out;
}

NamedTensors gpt2_to_hugging_face(const NamedTensors& dtrain_weights, int64_t vocabulary) {
  const std::string layout = "dtrain GPT weights";
  // A training checkpoint holds the model under "model." and the optimizer under "optimizer.":
  // only the model converts.
  const bool training_checkpoint = dtrain_weights.count("model.token_embedding.weight") != 0;
  NamedTensors model;
  for (const auto& [name, tensor] : dtrain_weights) {
    if (!training_checkpoint) model[name] = tensor;
    else if (starts_with(name, "model.")) model[name.substr(std::string("model.").size())] = tensor;
  }
  const int64_t layers = count_layers(model, "blocks.");
  TensorTaker source(std::move(model), layout);
  const Tensor& token_embedding = source.peek("token_embedding.weight");
  if (token_embedding.dim() != 2) {
    fail(layout, ": 'token_embedding.weight' must be [vocabulary, d_model], got ", token_embedding.shape());
  }
  const int64_t model_vocabulary = token_embedding.size(0), d = token_embedding.size(1);
  if (vocabulary > model_vocabulary) {
    fail(layout, ": the model has ", model_vocabulary, " tokens, fewer than the ", vocabulary, " asked for");
  }
  if (source.contains("output.weight")) {  // the tied output layer's name for the same weight
    if (!same_values(source.peek("output.weight"), token_embedding)) {
      fail(layout, ": 'output.weight' differs from 'token_embedding.weight'; GPT-2 ties them");
    }
    source.drop("output.weight");
  }
  const Tensor& fc_weight = source.peek("blocks.0.mlp.fc.weight");
  if (fc_weight.dim() != 2) fail(layout, ": 'blocks.0.mlp.fc.weight' must be [hidden, d_model], got ", fc_weight.shape());
  const int64_t hidden = fc_weight.size(0);
  const int64_t context = source.peek("position_embedding.weight").size(0);

  NamedTensors out;
  Tensor wte = source.take("token_embedding.weight", {model_vocabulary, d});
  out["wte.weight"] = vocabulary != 0 && vocabulary < model_vocabulary ? wte.narrow(0, 0, vocabulary).contiguous() : wte;
  out["wpe.weight"] = source.take("position_embedding.weight", {context, d});
  for (int64_t i = 0; i < layers; ++i) {
    const std::string from = "blocks." + std::to_string(i) + ".", to = "h." + std::to_string(i) + ".";
    for (const BlockTensor& tensor : kBlockTensors) {
      Tensor value = source.take(from + tensor.dtrain, dtrain_block_shape(tensor.dtrain, d, hidden));
      out[to + tensor.hugging_face] = tensor.conv1d_weight ? transposed(value) : value;
    }
  }
  out["ln_f.weight"] = source.take("final_norm.weight", {d});
  out["ln_f.bias"] = source.take("final_norm.bias", {d});
  source.check_all_taken();
  return out;
}

Gpt2Shape gpt2_shape(const NamedTensors& dtrain_weights) {
  NamedTensors model;  // without the "model." prefix of a training checkpoint
  for (const auto& [name, tensor] : dtrain_weights) model[starts_with(name, "model.") ? name.substr(6) : name] = tensor;
  auto matrix = [&](const std::string& name) -> const Tensor& {
    auto found = model.find(name);
    if (found == model.end()) fail("dtrain GPT weights: the tensor '", name, "' is missing");
    if (found->second.dim() != 2) fail("dtrain GPT weights: '", name, "' must have two dimensions, got ", found->second.shape());
    return found->second;
  };
  return {.vocabulary = matrix("token_embedding.weight").size(0),
          .context = matrix("position_embedding.weight").size(0),
          .d_model = matrix("token_embedding.weight").size(1),
          .layers = count_layers(model, "blocks.")};
}

}  // namespace dtrain::train
