// dtrain-consolidate: writes one plain safetensors file from a sharded checkpoint directory —
// the model's weights by default (a state dict any single process loads), or every tensor.
//
//   dtrain-consolidate ckpt/step-1000 model.safetensors            # weights: "fc.weight", ...
//   dtrain-consolidate ckpt/step-1000 everything.safetensors --all # "model.*", "optimizer.*"
//   dtrain-consolidate ckpt/step-1000 model.safetensors --verify   # check every shard first
//
// Exit status: 0 written, 1 the checkpoint could not be read or the file written (the message
// names the file and the tensor), 2 wrong usage.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "dist/checkpoint/consolidate.h"

namespace {

constexpr const char* kUsage =
    "usage: dtrain-consolidate <checkpoint directory> <output.safetensors> [--all] [--verify]\n"
    "  Writes the model's weights of a sharded checkpoint (dist::save_sharded_checkpoint) as one\n"
    "  safetensors state dict, whole tensors in the dtype they were saved in.\n"
    "  --all     every tensor under its checkpoint name (model.*, optimizer.*), not only the weights\n"
    "  --verify  check every checksum of every shard file first\n";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> paths;
  dtrain::dist::ConsolidateOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string argument = argv[i];
    if (argument == "--all") {
      options.all_tensors = true;
    } else if (argument == "--verify") {
      options.verify = true;
    } else if (argument == "--help" || argument == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (argument.rfind("--", 0) == 0) {
      std::fprintf(stderr, "dtrain-consolidate: unknown option '%s'\n%s", argument.c_str(), kUsage);
      return 2;
    } else {
      paths.push_back(argument);
    }
  }
  if (paths.size() != 2) {
    std::fprintf(stderr, "dtrain-consolidate: expected a checkpoint directory and an output file, got %zu paths\n%s",
                 paths.size(), kUsage);
    return 2;
  }
  try {
    dtrain::dist::ConsolidateSummary summary = dtrain::dist::consolidate_checkpoint(paths[0], paths[1], options);
    std::printf("wrote %lld tensors (%lld bytes) of step %lld, saved by %d ranks, to %s\n",
                static_cast<long long>(summary.tensors), static_cast<long long>(summary.bytes),
                static_cast<long long>(summary.step), summary.saved_world_size, paths[1].c_str());
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "dtrain-consolidate: %s\n", error.what());
    return 1;
  }
}
