#pragma once
// DTRAIN_HOST_DEVICE marks a function that CUDA kernels call as well as the CPU code (one copy of
// the arithmetic, so both devices give the same bits); outside nvcc it is nothing.
#if defined(__CUDACC__)
#define DTRAIN_HOST_DEVICE __host__ __device__
#else
#define DTRAIN_HOST_DEVICE
#endif
