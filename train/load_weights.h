#pragma once
// Weights only, from a safetensors file, into a model: how a run starts from another run's
// weights (--init-from, TrainerOptions::init_from) without its optimizer, step or data position.
// Any file whose tensor names match the model's state_dict loads:
//   - a consolidated dtrain checkpoint (dtrain-consolidate: "fc.weight", ...),
//   - a dtrain training checkpoint ("model.fc.weight", ...; its "optimizer.*" tensors are skipped),
//   - PyTorch's safetensors.torch.save_file(model.state_dict(), path) of a model with the same
//     names and shapes.
// A name may carry the "model." prefix or not. Values are cast to the model's dtype (a float32
// file into a float64 model) and copied onto its device.
//
//   auto model = std::make_shared<MyNet>();
//   train::load_weights(*model, "pretrained.safetensors");
#include <filesystem>

#include "core/error.h"
#include "layers/module.h"

namespace dtrain::train {

// The model has a tensor the file lacks (every missing name is listed).
class MissingWeightError : public Error {
 public:
  using Error::Error;
};

// The file has a tensor the model lacks (every such name is listed).
class UnexpectedWeightError : public Error {
 public:
  using Error::Error;
};

// A tensor's shape in the file differs from the model's (both shapes are named).
class WeightShapeError : public Error {
 public:
  using Error::Error;
};

// Copies the file's tensors into module's parameters and persistent buffers. Every name and
// shape is checked first: on any mismatch nothing is copied and the error (one of the three
// above, the first of missing, unexpected, shape that applies) names the file and every tensor
// concerned. An unreadable or damaged file raises dtrain::Error (core/safetensors.h).
void load_weights(Module& module, const std::filesystem::path& path);

}  // namespace dtrain::train
