#include "train/load_weights.h"

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "core/grad_mode.h"
#include "core/safetensors.h"
#include "layers/state_dict.h"

namespace dtrain::train {

namespace {

constexpr const char* kModelPrefix = "model.";

bool starts_with_model_prefix(const std::string& name) { return name.rfind(kModelPrefix, 0) == 0; }

std::string joined(const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& name : names) text += (text.empty() ? "'" : ", '") + name + "'";
  return text;
}

// The file's tensors under the model's names. A training checkpoint keeps the model under
// "model." next to "optimizer." state: when the file has any "model." name, only those count
// (prefix dropped); otherwise every name is a model name.
std::map<std::string, Tensor> model_tensors_of(std::map<std::string, Tensor> file_tensors, const StateDict& expected) {
  bool prefixed = false;
  for (const auto& [name, tensor] : file_tensors) {
    // A model may itself have a child called "model": its names are taken as they are.
    if (starts_with_model_prefix(name) && !expected.contains(name)) prefixed = true;
  }
  if (!prefixed) return file_tensors;
  std::map<std::string, Tensor> tensors;
  const size_t prefix_length = std::string(kModelPrefix).size();
  for (auto& [name, tensor] : file_tensors) {
    if (starts_with_model_prefix(name)) tensors.emplace(name.substr(prefix_length), tensor);
  }
  return tensors;
}

}  // namespace

void load_weights(Module& module, const std::filesystem::path& path) {
  const StateDict expected = module.state_dict();
  std::map<std::string, Tensor> tensors = model_tensors_of(load_safetensors(path).tensors, expected);

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
  const std::string file = path.string();
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
