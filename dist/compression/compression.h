#pragma once
// Gradient compression with error feedback, as DDP communication hooks (see
// dist/compression/gradient_compression.h):
//   ddp.register_comm_hook(dist::as_hook(dist::make_gradient_compression("powersgd:4")));
#include "dist/compression/error_feedback.h"
#include "dist/compression/gradient_compression.h"
#include "dist/compression/powersgd_compression.h"
#include "dist/compression/quantized_compression.h"
#include "dist/compression/topk_compression.h"
