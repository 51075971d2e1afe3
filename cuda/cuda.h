#pragma once
// Umbrella header of the CUDA backend (libdtrain_cuda.so). Nothing outside cuda/ includes it:
// programs reach CUDA through core (core/cuda_device.h, Device::cuda(), the kernel table), which
// loads this library on first use. Its tests are the one exception.
#include "cuda/block_pool.h"
#include "cuda/caching_allocator.h"
#include "cuda/check.h"
#include "cuda/cuda_backend.h"
#include "cuda/stream.h"
