#include "optim/state_dict.h"

#include <sstream>

#include "core/ops/factory.h"

namespace dtrain::optim {

Tensor float64_scalar(double value) { return scalar_tensor(value, kFloat64); }
Tensor int64_scalar(int64_t value) { return scalar_tensor(value, kInt64); }

void StateDictProblems::raise_if_any(const std::string& what) const {
  if (problems_.empty()) return;
  std::ostringstream message;
  message << what << ": the state dict does not fit (" << problems_.size()
          << (problems_.size() == 1 ? " problem" : " problems") << "; nothing was loaded):";
  for (const std::string& problem : problems_) message << "\n  " << problem;
  fail(message.str());
}

std::optional<double> StateDictProblems::number(const StateDict& dict, const std::string& key, DType dtype) {
  auto found = dict.find(key);
  if (found == dict.end()) {
    add(detail::concat("missing key '", key, "' (expected a one-element ", dtype, " tensor)"));
    return std::nullopt;
  }
  const Tensor& value = found->second;
  if (!value.defined()) {
    add(detail::concat("key '", key, "': expected a one-element ", dtype, " tensor, got an undefined tensor"));
    return std::nullopt;
  }
  if (value.dtype() != dtype || value.numel() != 1) {
    add(detail::concat("key '", key, "': expected a one-element ", dtype, " tensor, got dtype ", value.dtype(),
                       " and shape ", value.shape()));
    return std::nullopt;
  }
  return value.item();
}

bool StateDictProblems::tensor(const StateDict& dict, const std::string& key, const Shape& shape, DType dtype,
                               const std::string& note) {
  auto found = dict.find(key);
  if (found == dict.end()) {
    add(detail::concat("missing key '", key, "'", note, ": expected shape ", shape, " and dtype ", dtype));
    return false;
  }
  const Tensor& value = found->second;
  if (!value.defined()) {
    add(detail::concat("key '", key, "'", note, ": expected shape ", shape, " and dtype ", dtype,
                       ", got an undefined tensor"));
    return false;
  }
  if (value.shape() != shape || value.dtype() != dtype) {
    add(detail::concat("key '", key, "'", note, ": expected shape ", shape, " and dtype ", dtype, ", got shape ",
                       value.shape(), " and dtype ", value.dtype()));
    return false;
  }
  return true;
}

}  // namespace dtrain::optim
