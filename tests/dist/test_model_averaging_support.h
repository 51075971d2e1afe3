#pragma once
// What the model-averaging tests share: a model's parameters as one flat list of values (read,
// written), and whether every rank holds the same values.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/core.h"
#include "dist/dist.h"
#include "layers/module.h"

namespace dtrain::dist::testing {

// Every parameter's values, in parameter order, as float64.
inline std::vector<double> flat_parameters(const Module& model) {
  std::vector<double> values;
  for (const Tensor& parameter : model.parameters()) {
    std::vector<double> part = parameter.contiguous().to(kFloat64).to_vector<double>();
    values.insert(values.end(), part.begin(), part.end());
  }
  return values;
}

// The inverse: values (rounded to each parameter's dtype) into the parameters, in order.
inline void set_parameters(Module& model, const std::vector<double>& values) {
  NoGradGuard no_grad;
  size_t offset = 0;
  for (Tensor parameter : model.parameters()) {
    std::vector<double> part(values.begin() + static_cast<std::ptrdiff_t>(offset),
                             values.begin() + static_cast<std::ptrdiff_t>(offset + parameter.numel()));
    parameter.copy_(from_vector<double>(part, parameter.shape()).to(parameter.dtype()));
    offset += static_cast<size_t>(parameter.numel());
  }
}

// Whether every rank holds exactly these values: the element-wise max and min over ranks equal them.
inline bool equal_on_every_rank(const std::vector<double>& values) {
  Tensor largest = from_vector<double>(values);
  Tensor negated_smallest = from_vector<double>(values).mul_(-1.0);
  world().all_reduce(largest, ReduceOp::Max)->wait();
  world().all_reduce(negated_smallest, ReduceOp::Max)->wait();
  return largest.to_vector<double>() == values && negated_smallest.mul_(-1.0).to_vector<double>() == values;
}

// Every rank's values (the same count on each), by rank.
inline std::vector<std::vector<double>> gather_values(const std::vector<double>& values) {
  const int ranks = world().size();
  const auto count = static_cast<int64_t>(values.size());
  Tensor all = empty({ranks * count}, {.dtype = kFloat64});
  world().all_gather(from_vector<double>(values), all)->wait();
  std::vector<double> flat = all.to_vector<double>();
  std::vector<std::vector<double>> by_rank;
  for (int rank = 0; rank < ranks; ++rank) {
    by_rank.emplace_back(flat.begin() + rank * count, flat.begin() + (rank + 1) * count);
  }
  return by_rank;
}

}  // namespace dtrain::dist::testing
