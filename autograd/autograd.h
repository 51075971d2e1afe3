#pragma once
// Umbrella header of dtrain_autograd: the backward engine, grad mode and gradcheck. Ops record
// the graph themselves (core/graph.h); Tensor::backward() runs this engine.
#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "core/grad_mode.h"
#include "core/graph.h"
