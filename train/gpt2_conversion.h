#pragma once
// GPT-2 weights between the Hugging Face layout (transformers' GPT2Model / GPT2LMHeadModel
// safetensors) and dtrain's GPT (layers/gpt.h):
//
//   wte.weight                 <-> token_embedding.weight   (rows padded to dtrain's vocabulary)
//   wpe.weight                 <-> position_embedding.weight
//   h.<i>.ln_1.{weight,bias}   <-> blocks.<i>.ln1.{weight,bias}
//   h.<i>.attn.c_attn.*        <-> blocks.<i>.attn.qkv.*     (weights transposed: Conv1D stores
//   h.<i>.attn.c_proj.*        <-> blocks.<i>.attn.proj.*     [in, out], Linear [out, in])
//   h.<i>.ln_2.*               <-> blocks.<i>.ln2.*
//   h.<i>.mlp.c_fc.*           <-> blocks.<i>.mlp.fc.*
//   h.<i>.mlp.c_proj.*         <-> blocks.<i>.mlp.proj.*
//   ln_f.{weight,bias}         <-> final_norm.{weight,bias}
//
// Both models split the fused q, k, v projection the same way (q, k, v of d_model columns each,
// then heads) and use the tanh GELU and LayerNorm eps 1e-5, so the converted weights compute the
// same logits. The output layer is tied to the token embedding in both.
#include <cstdint>
#include <map>
#include <string>

#include "core/tensor.h"

namespace dtrain::train {

using NamedTensors = std::map<std::string, Tensor>;

// Hugging Face names (with or without the "transformer." prefix of GPT2LMHeadModel) to dtrain's.
// The causal-mask buffers (h.<i>.attn.bias, h.<i>.attn.masked_bias) are dropped; lm_head.weight
// is accepted only when it equals wte.weight (dtrain's output layer is tied). The token embedding
// gets zero rows up to `vocabulary` (0: as many as the file has; GPT-2's 50257 tokens are padded to
// 50304 for speed, as llm.c does). Raises naming any tensor that is missing, unexpected or of a
// shape that disagrees with the others.
NamedTensors gpt2_from_hugging_face(const NamedTensors& hugging_face, int64_t vocabulary = 0);

// dtrain's names (a consolidated checkpoint or a model's state dict, with or without the
// "model." prefix of a training checkpoint) to Hugging Face's GPT2Model names, keeping the first
// `vocabulary` rows of the token embedding (0: all). The inverse of gpt2_from_hugging_face: a
// round trip gives back the same bytes.
NamedTensors gpt2_to_hugging_face(const NamedTensors& dtrain_weights, int64_t vocabulary = 0);

// The shape a set of dtrain GPT weights implies (what the gpt example needs to build the model).
struct Gpt2Shape {
  int64_t vocabulary = 0;
  int64_t context = 0;
  int64_t d_model = 0;
  int64_t layers = 0;
};
Gpt2Shape gpt2_shape(const NamedTensors& dtrain_weights);

}  // namespace dtrain::train
