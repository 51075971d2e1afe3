#pragma once
// TrainingState: everything besides the model and the optimizer that a run needs to go on
// exactly where it stopped — the step, the random generators' positions and the data loaders'
// positions — plus free-form metadata (the run's configuration, a note). A checkpoint stores it
// next to the model and optimizer state (train/checkpoint.h).
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include "core/random.h"
#include "data/dataloader.h"

namespace dtrain::train {

// A generator's whole state: its seed and its position in the Philox stream.
struct GeneratorState {
  uint64_t seed = 0;
  uint64_t offset = 0;
  friend bool operator==(const GeneratorState&, const GeneratorState&) = default;
};

// The state of generator (dtrain's default generator when not given: the one dropout and the
// parameter initialisers draw from).
GeneratorState generator_state(const Generator& generator = default_generator());
void restore_generator(const GeneratorState& state, Generator& generator = default_generator());

struct TrainingState {
  int64_t step = 0;  // optimizer steps taken so far
  // By name, so a run may keep several ("default" for dtrain's default generator, "train" and
  // "validation" loaders, ...).
  std::map<std::string, GeneratorState> generators = {};
  std::map<std::string, DataLoaderState> loaders = {};
  std::map<std::string, std::string> metadata = {};
  // The checkpoint this state was loaded from (empty when built in code); errors name it.
  std::filesystem::path source = {};
  // Whether the checkpoint's data is checked against checksums saved with it: a dtrain file or
  // sharded checkpoint is; a safetensors file written by another tool carries none, so it loads
  // unverified. False when built in code.
  bool verified = false;

  // The entry called name; raise a dtrain::Error naming the checkpoint and the names it has.
  const GeneratorState& generator(const std::string& name) const;
  const DataLoaderState& loader(const std::string& name) const;
};

}  // namespace dtrain::train
