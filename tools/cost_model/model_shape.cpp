#include "tools/cost_model/model_shape.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"

namespace dtrain::cost_model {

int64_t ModelShape::parameter_count() const {
  int64_t count = 0;
  for (const ModuleShape& module : modules) {
    for (const ParameterShape& parameter : module.parameters) count += parameter.elements();
  }
  return count;
}

std::vector<ParameterShape> ModelShape::parameters_in_order() const {
  std::vector<ParameterShape> all;
  for (const ModuleShape& module : modules) all.insert(all.end(), module.parameters.begin(), module.parameters.end());
  return all;
}

ModelShape gpt_model_shape(int64_t vocabulary, int64_t context, int64_t d_model, int64_t layers, int64_t mlp_ratio) {
  if (vocabulary < 1 || context < 1 || d_model < 1 || layers < 1 || mlp_ratio < 1) {
    fail("a GPT shape needs vocabulary, context, d_model, layers and mlp_ratio >= 1, got ", vocabulary, ", ", context,
         ", ", d_model, ", ", layers, ", ", mlp_ratio);
  }
  const int64_t hidden = mlp_ratio * d_model;
  // Linear weights are [out, in], as layers/linear.cpp registers them.
  auto linear = [](const std::string& name, int64_t in, int64_t out) {
    return ModuleShape{name, {{out, in}, {out, 1}}};
  };
  auto layer_norm = [d_model](const std::string& name) { return ModuleShape{name, {{d_model, 1}, {d_model, 1}}}; };
  ModelShape model;
  model.modules.push_back({"token_embedding", {{vocabulary, d_model}}});
  model.modules.push_back({"position_embedding", {{context, d_model}}});
  for (int64_t layer = 0; layer < layers; ++layer) {
    const std::string block = "blocks." + std::to_string(layer) + ".";
    model.modules.push_back(layer_norm(block + "ln1"));
    model.modules.push_back(linear(block + "attn.qkv", d_model, 3 * d_model));
    model.modules.push_back(linear(block + "attn.proj", d_model, d_model));
    model.modules.push_back(layer_norm(block + "ln2"));
    model.modules.push_back(linear(block + "mlp.fc", d_model, hidden));
    model.modules.push_back(linear(block + "mlp.proj", hidden, d_model));
  }
  model.modules.push_back(layer_norm("final_norm"));
  return model;
}

ModelShape square_matrices_shape(int64_t parameters, int64_t side) {
  if (parameters < 1 || side < 1) fail("a model of square matrices needs parameters and side >= 1, got ", parameters, " and ", side);
  ModelShape model;
  int64_t left = parameters;
  while (left > 0) {
    const int64_t elements = std::min(left, side * side);
    // A remainder smaller than a whole matrix: as many full rows as fit, then a vector of the rest.
    if (elements == side * side) {
      model.modules.push_back({"matrix " + std::to_string(model.modules.size()), {{side, side}}});
    } else {
      ModuleShape module{"matrix " + std::to_string(model.modules.size()), {}};
      if (elements / side > 0) module.parameters.push_back({elements / side, side});
      if (elements % side > 0) module.parameters.push_back({elements % side, 1});
      model.modules.push_back(module);
    }
    left -= elements;
  }
  return model;
}

std::vector<std::vector<ParameterShape>> bucket_parameters(const ModelShape& model, int64_t element_bytes,
                                                           double cap_bytes, double first_cap_bytes) {
  std::vector<ParameterShape> order = model.parameters_in_order();
  std::reverse(order.begin(), order.end());
  std::vector<std::vector<ParameterShape>> buckets;
  std::vector<ParameterShape> current;
  double current_bytes = 0;
  for (const ParameterShape& parameter : order) {
    current.push_back(parameter);
    current_bytes += static_cast<double>(parameter.elements() * element_bytes);
    const double cap = buckets.empty() && first_cap_bytes > 0 ? first_cap_bytes : cap_bytes;
    if (current_bytes >= cap) {
      buckets.push_back(current);
      current.clear();
      current_bytes = 0;
    }
  }
  if (!current.empty()) buckets.push_back(current);
  return buckets;
}

}  // namespace dtrain::cost_model
