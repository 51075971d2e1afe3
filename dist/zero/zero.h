#pragma once
// Umbrella header of ZeRO: sharded optimizer state, gradients and parameters (stages 0-3), mixed
// precision with fp32 master weights, and the per-rank memory report.
#include "dist/zero/memory_report.h"
#include "dist/zero/shard_layout.h"
#include "dist/zero/sharded_construction.h"
#include "dist/zero/zero_optimizer.h"
#include "dist/zero/zero_options.h"
