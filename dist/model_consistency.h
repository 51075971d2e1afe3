#pragma once
// Checks that every rank built the same model before DistributedDataParallel pairs up their
// tensors: a rank with a different model would otherwise all-reduce unrelated buffers and hang
// or silently corrupt the training.
#include <string>
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

}  // namespace dtrain::dist
