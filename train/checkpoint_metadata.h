#pragma once
// The TrainingState as safetensors __metadata__ (string to string). Numbers are written in
// decimal, so 64-bit seeds and offsets survive exactly (a JSON reader would pass them through a
// double). The keys:
//   format                       "dtrain.checkpoint.v2" (v1: optimizer state keyed by the
//                                optimizer's parameter index, train/checkpoint_names.h)
//   optimizer                    the optimizer's name ("AdamW"), checked on load
//   step                         optimizer steps taken
//   generator.<name>.seed        and .offset
//   loader.<name>.seed           and .epoch, .batch
//   user.<key>                   TrainingState::metadata
#include <filesystem>
#include <map>
#include <string>

#include "train/training_state.h"

namespace dtrain::train {

inline constexpr const char* kCheckpointFormat = "dtrain.checkpoint.v2";
inline constexpr const char* kCheckpointFormatV1 = "dtrain.checkpoint.v1";

std::map<std::string, std::string> encode_checkpoint_metadata(const TrainingState& state,
                                                              const std::string& optimizer_name);

// The state the metadata describes; raises a dtrain::Error naming path and every bad or unknown
// key. The optimizer's name is returned through optimizer_name, and the format (either version)
// through format when given.
TrainingState decode_checkpoint_metadata(const std::map<std::string, std::string>& metadata,
                                         const std::filesystem::path& path, std::string& optimizer_name,
                                         std::string* format = nullptr);

}  // namespace dtrain::train
