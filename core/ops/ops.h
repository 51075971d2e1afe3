#pragma once
// Every tensor op dtrain has. Each checks its arguments, dispatches once to the kernel table of
// the tensors' device (core/backend.h) and, when an input requires grad, records its backward.
#include "core/ops/elementwise.h"
#include "core/ops/factory.h"
#include "core/ops/index.h"
#include "core/ops/join.h"
#include "core/ops/matmul.h"
#include "core/ops/reduce.h"
#include "core/ops/softmax.h"
#include "core/ops/unary.h"
#include "core/ops/view.h"
