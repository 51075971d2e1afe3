#pragma once
// Parameter tensors initialised as PyTorch initialises its layers, drawn from dtrain's default
// generator: manual_seed(s) before building a model gives the same model every time. They are
// float32 on the CPU and counted as MemoryTag::Parameters; Module::to moves or converts them.
// Under a DeferredInit (layers/deferred_init.h) they hold no bytes and record their draw.
#include <cstdint>

#include "core/tensor.h"

namespace dtrain {

// U(-bound, bound)
Tensor uniform_parameter(const Shape& shape, double bound);
// N(mean, std^2)
Tensor normal_parameter(const Shape& shape, double mean, double std);
Tensor constant_parameter(const Shape& shape, double value);
// Draws parameter again from N(mean, std^2) in place (as normal_), for a model that overrides a
// layer's default initialisation; under a DeferredInit it records the new draw instead.
void reinitialize_normal(const Tensor& parameter, double mean, double std);

// 1 / sqrt(fan_in): the bound of PyTorch's default for Linear and Conv weights
// (kaiming_uniform with a = sqrt(5) reduces to it) and for their biases.
double default_init_bound(int64_t fan_in);

}  // namespace dtrain
