#pragma once
// Checks that every rank built the same model before DistributedDataParallel pairs up their
// tensors: a rank with a different model would otherwise all-reduce unrelated buffers and hang
// or silently corrupt the training. Equal shapes are not enough — two ranks with 4 and 2
// attention heads have the same parameters and would train a meaningless average — so the
// modules' settings (Module::describe) and the run's own (ZeRO stage, precision, optimizer,
// batch, ...) are compared too.
#include <string>
#include <utility>
#include <vector>

#include "dist/process_group.h"
#include "layers/module.h"

namespace dtrain::dist {

// One line per tensor, "'blocks.0.attn.qkv.weight' [768, 256] float32": what must agree.
std::string describe_tensor(const NamedTensor& tensor);

// Returns when every rank of group passed the same names, shapes and dtypes in the same order.
// Otherwise raises a dtrain::Error on every rank — all ranks take part in the same collectives,
// so none is left waiting — naming the first tensor that differs and what the two ranks have.
// One small all-gather (a hash and a count per rank) when the models agree; the descriptions
// themselves travel only when they do not. `who` prefixes the message.
void check_same_tensors_on_all_ranks(ProcessGroup& group, const std::vector<NamedTensor>& tensors, const char* who);

// Settings that must agree across ranks, as (name, value) text pairs, in a fixed order.
using RunSettings = std::vector<std::pair<std::string, std::string>>;

// The model's settings: for every module (Module::named_modules order) its type, "<path>" ->
// "CausalSelfAttention" ("(model)" for the root), and each pair of its describe(),
// "<path>.heads" -> "4".
RunSettings model_settings(Module& model);

// Returns when every rank of group passed the same settings. Otherwise raises a dtrain::Error on
// every rank naming the first setting that differs and both values — "rank 1 has
// blocks.0.attn.heads=2, rank 0 blocks.0.attn.heads=4". One small all-gather when they agree.
void check_same_settings_on_all_ranks(ProcessGroup& group, const RunSettings& settings, const char* who);

}  // namespace dtrain::dist
