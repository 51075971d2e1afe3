#pragma once
// When an update may run as one fused loop over raw CPU memory (one pass that reads the
// parameter, gradient and state and writes them back) instead of a chain of tensor ops that
// each make a pass and a temporary.
#include <cstdint>
#include <initializer_list>

#include "core/tensor.h"

namespace dtrain::optim {

// Below this many elements a loop runs on one thread: starting a team costs more than it saves.
inline constexpr int64_t kMinElementsToParallelize = 32768;

// Whether every defined tensor is a contiguous CPU tensor of dtype float32 or float64, all of
// one dtype and one number of elements (undefined ones are skipped: optional state).
bool fusable_on_cpu(std::initializer_list<Tensor> tensors);

// A pointer to the first element for a fused loop, nullptr for an undefined (optional) tensor.
template <typename T>
T* fused_data(const Tensor& tensor) {
  return tensor.defined() ? tensor.data_ptr<T>() : nullptr;
}

}  // namespace dtrain::optim
