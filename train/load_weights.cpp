#include "train/load_weights.h"

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "core/grad_mode.h"
#include "core/safetensors.h"
#include "layers/state_dict.h"
#include "train/checkpoint_names.h"

namespace dtrain::train {

namespace {

std::string joined(const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& name : names) text += (text.empty() ? "'" : ", '") + name + "'";
  return text;
}

}  // namespace

void load_weights(Module& module, const std::filesystem::path& path) {
  const StateDict expected = module.state_dict();
  const std::string file = path.string();
  // Either naming, "model.<name>" or bare (train/checkpoint_names.h); optimizer state skipped.
  std::map<std::string, Tensor> tensors;
  try {
    tensors = model_weights(load_safetensors(path).tensors, module).to_map();
  } catch (const Error& error) {
    fail("loading weights from ", file, ": ", error.what());
  }

  std::vector<std::string> missing;
  std::vector<std::string> mismatched;
  for (const auto& [name, target] : expected) {
    auto found = tensors.find(name);
    if (found == tensors.end()) {
      missing.push_back(name);
    } else if (found->second.shape() != target.shape()) {
      mismatched.push_back("'" + name + "': the model's " + target.shape().str() + ", the file's " +
                           found->second.shape().str());
    }
  }
  std::vector<std::string> unexpected;
  for (const auto& [name, tensor] : tensors) {
    if (!expected.contains(name)) unexpected.push_back(name);
  }
  if (!missing.empty()) {
    throw MissingWeightError("loading weights from " + file + ": the model's " + joined(missing) +
                             (missing.size() == 1 ? " is" : " are") + " not in the file");
  }
  if (!unexpected.empty()) {
    throw UnexpectedWeightError("loading weights from " + file + ": the file's " + joined(unexpected) +
                                (unexpected.size() == 1 ? " is" : " are") + " not in the model");
  }
  if (!mismatched.empty()) {
    std::string text;
    for (const std::string& item : mismatched) text += (text.empty() ? "" : "; ") + item;
    throw WeightShapeError("loading weights from " + file + ": shapes differ: " + text);
  }
  NoGradGuard no_grad;
  for (const auto& [name, target] : expected) {
    const Tensor& source = tensors.at(name);
    Tensor value = source.dtype() == target.dtype() ? source : source.to(target.dtype());
    Tensor destination = target;  // shares the module's storage
    destination.copy_(value.device() == target.device() ? value : value.to(target.device()));
  }
}

}  // namespace dtrain::train
