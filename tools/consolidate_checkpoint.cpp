// dtrain-consolidate: writes one plain safetensors file from a sharded checkpoint directory —
// the model's weights by default (what train::load_weights loads in any single process),
// or every tensor; both under the checkpoint's names (train/checkpoint_names.h).
//
//   dtrain-consolidate ckpt/step-1000 model.safetensors            # weights: "model.fc.weight", ...
//   dtrain-consolidate ckpt/step-1000 everything.safetensors --all # also "optimizer.*"
//   dtrain-consolidate ckpt/step-1000 model.safetensors --verify   # check every shard first
//
// Exit status: 0 written, 1 the checkpoint could not be read or the file written (the message
// names the file and the tensor), 2 wrong usage (tools/command_line/).
#include <cstdio>
#include <string>

#include "dist/checkpoint/consolidate.h"
#include "tools/command_line/flags.h"
#include "tools/command_line/program_exit.h"

int main(int argc, char** argv) {
  return dtrain::command_line::run_program("dtrain-consolidate", [&] {
    std::string directory, output;
    dtrain::dist::ConsolidateOptions options;
    dtrain::command_line::FlagParser flags(
        "dtrain-consolidate",
        "Writes the model's weights of a sharded checkpoint as one safetensors file: whole tensors, in the\n"
        "dtype they were saved in, under their checkpoint names (model.<name>).");
    flags.add_argument("checkpoint directory", directory, "a sharded checkpoint: the directory holding index.json");
    flags.add_argument("output.safetensors", output, "the file to write (replaced atomically)");
    flags.add("all", options.all_tensors, "every tensor (model.*, optimizer.*, loss_scaler.*), not only the weights");
    flags.add("verify", options.verify, "check every checksum of every shard file first");
    flags.parse(argc, argv);

    dtrain::dist::ConsolidateSummary summary = dtrain::dist::consolidate_checkpoint(directory, output, options);
    std::printf("wrote %lld tensors (%lld bytes) of step %lld, saved by %d ranks, to %s\n",
                static_cast<long long>(summary.tensors), static_cast<long long>(summary.bytes),
                static_cast<long long>(summary.step), summary.saved_world_size, output.c_str());
  });
}
